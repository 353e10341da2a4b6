// ExperimentEditor: an experiment file as a form (model, dataset, device, baseline, steps, sweep,
// measurement) and as raw JSON, kept in sync both ways. The JSON document is the source of truth:
// form edits write into it at their JSON pointer, so keys the form does not know survive. Validation
// (validateExperiment) runs after each change; each issue is shown at the widget its pointer names.
#pragma once

#include "engine/experiment/spec.h"

#include <nlohmann/json.hpp>

#include <QString>
#include <QTimer>
#include <QWidget>

#include <map>
#include <vector>

class QComboBox;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QRadioButton;
class QSpinBox;
class QTabWidget;
class QLabel;

namespace lathe::ui {

class SchemaForm;
class StepListEditor;
class SweepEditor;

class ExperimentEditor : public QWidget {
    Q_OBJECT
public:
    explicit ExperimentEditor(QWidget* parent = nullptr);

    // A small, valid experiment to start from (baseline trained with the `train` schema's defaults).
    static nlohmann::json newDocument();

    void setDocument(const nlohmann::json& doc, const QString& filePath = {}); // not modified afterwards
    const nlohmann::json& document() const { return m_doc; }
    QString filePath() const { return m_filePath; }
    QString displayName() const;
    bool isModified() const { return m_modified; }
    void setModified(bool modified);
    bool load(const QString& path, QString* error);
    bool save(const QString& path, QString* error);

    const std::vector<ValidationIssue>& issues() const { return m_issues; }
    bool hasSyntaxError() const { return !m_syntaxError.isEmpty(); }
    // Runs validation now (it otherwise runs shortly after each change).
    void validateNow();
    // The widget that edits the field at `pointer` (the nearest enclosing one), e.g. "/steps/0/params/lr".
    QWidget* widgetForPointer(const QString& pointer);

    QTabWidget* tabs() const { return m_tabs; }
    QPlainTextEdit* jsonEdit() const { return m_json; }
    QListWidget* issueList() const { return m_issueList; }
    StepListEditor* stepList() const { return m_steps; }
    SweepEditor* sweepEditor() const { return m_sweep; }
    QLineEdit* nameEdit() const { return m_name; }
    QComboBox* deviceCombo() const { return m_device; }
    SchemaForm* trainForm() const { return m_trainForm; }
    SchemaForm* measureForm() const { return m_measureForm; }
    // Applies pending JSON text edits now (they otherwise apply after a short pause in typing).
    void applyJsonText();

signals:
    void documentChanged();
    void modifiedChanged(bool modified);
    void validated(int issueCount);

private:
    QWidget* buildSetupPage();
    QWidget* buildJsonPage();
    void setAt(const std::string& pointer, const nlohmann::json& value); // form -> doc
    void eraseAt(const std::string& pointer);
    void documentEdited(bool fromJsonText);
    void refreshForm();
    void refreshJsonText();
    void showIssues();
    void markWidget(QWidget* w, const QString& message);
    void clearMarks();
    void jumpToIssue(int row);

    nlohmann::json m_doc;
    QString m_filePath;
    bool m_modified = false;
    bool m_updatingForm = false;
    bool m_updatingText = false;
    std::vector<ValidationIssue> m_issues;
    QString m_syntaxError;
    QTimer m_validateTimer;
    QTimer m_parseTimer;
    std::vector<QWidget*> m_marked;
    std::map<std::string, QWidget*> m_pointerWidgets;

    QTabWidget* m_tabs = nullptr;
    QLineEdit* m_name = nullptr;
    QLineEdit* m_description = nullptr;
    QComboBox* m_modelZoo = nullptr;
    QLineEdit* m_modelPath = nullptr;
    QComboBox* m_dataset = nullptr;
    SchemaForm* m_datasetForm = nullptr;
    QComboBox* m_device = nullptr;
    QRadioButton* m_baselineTrain = nullptr;
    QRadioButton* m_baselineModel = nullptr;
    SchemaForm* m_trainForm = nullptr;
    QLineEdit* m_baselinePath = nullptr;
    StepListEditor* m_steps = nullptr;
    SweepEditor* m_sweep = nullptr;
    SchemaForm* m_measureForm = nullptr;
    QSpinBox* m_seed = nullptr;
    QLineEdit* m_tags = nullptr;
    QPlainTextEdit* m_json = nullptr;
    QListWidget* m_issueList = nullptr;
    QLabel* m_status = nullptr;
};

} // namespace lathe::ui
