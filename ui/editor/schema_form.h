// SchemaForm: a parameter form generated from a StrategySchema (or any list of ParamFields): one
// editor per field chosen by ParamType, ranges and defaults from the schema, help as tooltips.
// Values it cannot show (a wrong type in a hand-written file) stay untouched until the user edits.
#pragma once

#include "engine/strategies/strategy.h"

#include <nlohmann/json.hpp>

#include <QWidget>

#include <map>
#include <string>

class QFormLayout;

namespace lathe::ui {

class SchemaForm : public QWidget {
    Q_OBJECT
public:
    explicit SchemaForm(StrategySchema schema, QWidget* parent = nullptr);

    const StrategySchema& schema() const { return m_schema; }
    // The schema's defaults as a JSON object (fields without a default are left out).
    static nlohmann::json defaults(const StrategySchema& schema);

    // Shows `params` (missing fields show their default). Emits nothing.
    void setValues(const nlohmann::json& params);
    // Every field: the given value where there was one, else the value shown (the default); fields that
    // inherit (ParamField::inherits) only when given or edited.
    nlohmann::json values() const;
    // Only the fields given to setValues or edited since (keeps a file's implicit defaults implicit).
    nlohmann::json explicitValues() const { return m_values; }

    QWidget* fieldWidget(const std::string& name) const;
    // Marks a field invalid (red frame, message in its tooltip); an empty message clears it.
    void setFieldError(const std::string& name, const QString& message);
    void clearErrors();

signals:
    // The user changed a field: `value` is its new JSON value.
    void fieldEdited(const QString& name, const QString& valueJson);

private:
    QWidget* createEditor(const ParamField& field);
    void showValue(const ParamField& field, const nlohmann::json& value);
    nlohmann::json shownValue(const ParamField& field) const;
    void onEdited(const ParamField& field);
    QString tooltipFor(const ParamField& field) const;

    StrategySchema m_schema;
    QFormLayout* m_layout;
    std::map<std::string, QWidget*> m_editors;
    nlohmann::json m_values = nlohmann::json::object();
    bool m_updating = false;
};

} // namespace lathe::ui
