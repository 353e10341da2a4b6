// SchemaForm: widgets per ParamType, kept in step with a JSON object of parameters.
#include "ui/editor/schema_form.h"

#include "ui/editor/number_spin_box.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QRegularExpressionValidator>
#include <QSpinBox>
#include <QStyle>

#include <climits>
#include <cmath>

namespace lathe::ui {

namespace {
constexpr double kSpinLimit = 1e12; // QDoubleSpinBox needs finite bounds; "unbounded" shows as this

double clampBound(double v) { return std::max(-kSpinLimit, std::min(kSpinLimit, v)); }
int clampInt(double v) {
    return static_cast<int>(std::max<double>(INT_MIN, std::min<double>(INT_MAX, v)));
}
bool unbounded(double v) { return std::abs(v) >= 1e299; }

QString formatRange(const ParamField& f) {
    if (unbounded(f.min) && unbounded(f.max)) {
        return {};
    }
    const QString lo = unbounded(f.min) ? QStringLiteral("-inf") : QString::number(f.min, 'g', 10);
    const QString hi = unbounded(f.max) ? QStringLiteral("inf") : QString::number(f.max, 'g', 10);
    return QStringLiteral("%1%2, %3%4")
        .arg(f.minExclusive ? QStringLiteral("(") : QStringLiteral("["), lo, hi,
             f.maxExclusive ? QStringLiteral(")") : QStringLiteral("]"));
}

nlohmann::json parseDefault(const ParamField& f) {
    if (f.defaultJson.empty()) {
        return nullptr;
    }
    try {
        return nlohmann::json::parse(f.defaultJson);
    } catch (const nlohmann::json::exception&) {
        return nullptr;
    }
}

QString integerListText(const nlohmann::json& v) {
    QStringList parts;
    if (v.is_array()) {
        for (const auto& x : v) {
            parts << QString::fromStdString(x.dump());
        }
    }
    return parts.join(QStringLiteral(", "));
}
} // namespace

SchemaForm::SchemaForm(StrategySchema schema, QWidget* parent)
    : QWidget(parent), m_schema(std::move(schema)), m_layout(new QFormLayout(this)) {
    m_layout->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    if (!m_schema.summary.empty()) {
        auto* summary = new QLabel(QString::fromStdString(m_schema.summary), this);
        summary->setWordWrap(true);
        summary->setEnabled(false); // secondary text colour of the current theme
        m_layout->addRow(summary);
    }
    for (const ParamField& field : m_schema.fields) {
        QWidget* editor = createEditor(field);
        editor->setObjectName(QString::fromStdString(field.name));
        editor->setToolTip(tooltipFor(field));
        editor->setProperty("defaultToolTip", editor->toolTip());
        QString label = QString::fromStdString(field.name);
        if (!field.unit.empty()) {
            label += QStringLiteral(" (%1)").arg(QString::fromStdString(field.unit));
        }
        auto* labelWidget = new QLabel(label, this);
        labelWidget->setToolTip(editor->toolTip());
        labelWidget->setBuddy(editor);
        m_layout->addRow(labelWidget, editor);
        m_editors[field.name] = editor;
    }
    setValues(nlohmann::json::object());
}

nlohmann::json SchemaForm::defaults(const StrategySchema& schema) {
    nlohmann::json out = nlohmann::json::object();
    for (const ParamField& f : schema.fields) {
        nlohmann::json d = parseDefault(f);
        if (!d.is_null()) {
            out[f.name] = d;
        }
    }
    return out;
}

QString SchemaForm::tooltipFor(const ParamField& f) const {
    QStringList lines;
    if (!f.help.empty()) {
        lines << QString::fromStdString(f.help);
    }
    const QString range = formatRange(f);
    if (!range.isEmpty() && (f.type == ParamType::Number || f.type == ParamType::Integer ||
                             f.type == ParamType::IntegerList)) {
        lines << tr("range: %1").arg(range);
    }
    if (f.type == ParamType::Choice) {
        QStringList choices;
        for (const auto& c : f.choices) {
            choices << QString::fromStdString(c);
        }
        lines << tr("one of: %1").arg(choices.join(QStringLiteral(", ")));
    }
    if (!f.inherits.empty()) {
        lines << tr("left out: the experiment's %1/%2").arg(QString::fromStdString(f.inherits), QString::fromStdString(f.name));
    } else {
        lines << (f.defaultJson.empty() ? tr("required") : tr("default: %1").arg(QString::fromStdString(f.defaultJson)));
    }
    return lines.join(QLatin1Char('\n'));
}

QWidget* SchemaForm::createEditor(const ParamField& f) {
    switch (f.type) {
    case ParamType::Number: {
        auto* spin = new NumberSpinBox(this);
        spin->setRange(clampBound(f.min), clampBound(f.max));
        spin->setKeyboardTracking(false);
        connect(spin, &QDoubleSpinBox::valueChanged, this, [this, f] { onEdited(f); });
        return spin;
    }
    case ParamType::Integer: {
        auto* spin = new QSpinBox(this);
        spin->setRange(clampInt(f.min + (f.minExclusive ? 1 : 0)), clampInt(f.max - (f.maxExclusive ? 1 : 0)));
        spin->setKeyboardTracking(false);
        connect(spin, &QSpinBox::valueChanged, this, [this, f] { onEdited(f); });
        return spin;
    }
    case ParamType::Boolean: {
        auto* box = new QCheckBox(this);
        connect(box, &QCheckBox::toggled, this, [this, f] { onEdited(f); });
        return box;
    }
    case ParamType::Choice: {
        auto* combo = new QComboBox(this);
        for (const auto& c : f.choices) {
            combo->addItem(QString::fromStdString(c));
        }
        connect(combo, &QComboBox::currentIndexChanged, this, [this, f] { onEdited(f); });
        return combo;
    }
    case ParamType::IntegerList: {
        auto* edit = new QLineEdit(this);
        edit->setPlaceholderText(f.inherits.empty() ? tr("e.g. 1, 64, 256")
                                                    : tr("from %1").arg(QString::fromStdString(f.inherits)));
        edit->setValidator(new QRegularExpressionValidator(
            QRegularExpression(QStringLiteral(R"(^\s*(-?\d+\s*(,\s*-?\d+\s*)*)?,?\s*$)")), edit));
        connect(edit, &QLineEdit::editingFinished, this, [this, f] { onEdited(f); });
        return edit;
    }
    case ParamType::String:
    default: {
        auto* edit = new QLineEdit(this);
        connect(edit, &QLineEdit::editingFinished, this, [this, f] { onEdited(f); });
        return edit;
    }
    }
}

void SchemaForm::showValue(const ParamField& f, const nlohmann::json& v) {
    QWidget* w = m_editors.at(f.name);
    switch (f.type) {
    case ParamType::Number:
        if (v.is_number()) {
            static_cast<QDoubleSpinBox*>(w)->setValue(v.get<double>());
        }
        break;
    case ParamType::Integer:
        if (v.is_number()) {
            static_cast<QSpinBox*>(w)->setValue(clampInt(v.get<double>()));
        }
        break;
    case ParamType::Boolean:
        if (v.is_boolean()) {
            static_cast<QCheckBox*>(w)->setChecked(v.get<bool>());
        }
        break;
    case ParamType::Choice:
        if (v.is_string()) {
            auto* combo = static_cast<QComboBox*>(w);
            combo->setCurrentIndex(combo->findText(QString::fromStdString(v.get<std::string>())));
        }
        break;
    case ParamType::IntegerList:
        static_cast<QLineEdit*>(w)->setText(integerListText(v));
        break;
    case ParamType::String:
        static_cast<QLineEdit*>(w)->setText(v.is_string() ? QString::fromStdString(v.get<std::string>())
                                                          : QString::fromStdString(v.is_null() ? "" : v.dump()));
        break;
    }
}

nlohmann::json SchemaForm::shownValue(const ParamField& f) const {
    QWidget* w = m_editors.at(f.name);
    switch (f.type) {
    case ParamType::Number:
        return static_cast<QDoubleSpinBox*>(w)->value();
    case ParamType::Integer:
        return static_cast<std::int64_t>(static_cast<QSpinBox*>(w)->value());
    case ParamType::Boolean:
        return static_cast<QCheckBox*>(w)->isChecked();
    case ParamType::Choice: {
        const QString text = static_cast<QComboBox*>(w)->currentText();
        return text.isEmpty() ? nlohmann::json(nullptr) : nlohmann::json(text.toStdString());
    }
    case ParamType::IntegerList: {
        nlohmann::json list = nlohmann::json::array();
        const QStringList parts = static_cast<QLineEdit*>(w)->text().split(QLatin1Char(','), Qt::SkipEmptyParts);
        for (const QString& p : parts) {
            bool ok = false;
            const qlonglong n = p.trimmed().toLongLong(&ok);
            if (ok) {
                list.push_back(static_cast<std::int64_t>(n));
            }
        }
        return list;
    }
    case ParamType::String:
    default:
        return static_cast<QLineEdit*>(w)->text().toStdString();
    }
}

void SchemaForm::setValues(const nlohmann::json& params) {
    m_updating = true;
    m_values = params.is_object() ? params : nlohmann::json::object();
    for (const ParamField& f : m_schema.fields) {
        QWidget* w = m_editors.at(f.name);
        const QSignalBlocker block(w);
        const nlohmann::json v = m_values.contains(f.name) ? m_values.at(f.name) : parseDefault(f);
        // A value of the wrong type cannot be shown; the default appears until the file is fixed.
        showValue(f, parseDefault(f));
        showValue(f, v);
    }
    m_updating = false;
}

nlohmann::json SchemaForm::values() const {
    nlohmann::json out = m_values;
    for (const ParamField& f : m_schema.fields) {
        // A field that inherits stays out until it is set: the step then follows the experiment.
        if (!out.contains(f.name) && f.inherits.empty()) {
            const nlohmann::json v = shownValue(f);
            if (!v.is_null()) {
                out[f.name] = v;
            }
        }
    }
    return out;
}

void SchemaForm::onEdited(const ParamField& f) {
    if (m_updating) {
        return;
    }
    const nlohmann::json v = shownValue(f);
    if (m_values.contains(f.name) && m_values.at(f.name) == v) {
        return;
    }
    m_values[f.name] = v;
    emit fieldEdited(QString::fromStdString(f.name), QString::fromStdString(v.dump()));
}

QWidget* SchemaForm::fieldWidget(const std::string& name) const {
    auto it = m_editors.find(name);
    return it == m_editors.end() ? nullptr : it->second;
}

void SchemaForm::setFieldError(const std::string& name, const QString& message) {
    QWidget* w = fieldWidget(name);
    if (!w) {
        return;
    }
    w->setProperty("lathe_error", !message.isEmpty());
    w->setStyleSheet(message.isEmpty() ? QString() : QStringLiteral("border: 1px solid #d55e00;"));
    const QString base = w->property("defaultToolTip").toString();
    w->setToolTip(message.isEmpty() ? base : message + QStringLiteral("\n\n") + base);
}

void SchemaForm::clearErrors() {
    for (const auto& [name, w] : m_editors) {
        setFieldError(name, {});
    }
}

} // namespace lathe::ui
