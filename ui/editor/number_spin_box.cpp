// NumberSpinBox: shortest-form display and scientific-notation input for numeric parameters.
#include "ui/editor/number_spin_box.h"

#include <QLocale>

namespace lathe::ui {

NumberSpinBox::NumberSpinBox(QWidget* parent) : QDoubleSpinBox(parent) {
    setDecimals(17); // QDoubleSpinBox rounds stored values to `decimals`; keep them all
    setStepType(QAbstractSpinBox::AdaptiveDecimalStepType);
}

QString NumberSpinBox::textFromValue(double value) const {
    return locale().toString(value, 'g', 12);
}

double NumberSpinBox::valueFromText(const QString& text) const {
    bool ok = false;
    const double v = locale().toDouble(text.trimmed(), &ok);
    return ok ? v : QString(text).trimmed().toDouble();
}

QValidator::State NumberSpinBox::validate(QString& input, int& pos) const {
    Q_UNUSED(pos);
    const QString t = input.trimmed();
    if (t.isEmpty() || t == QStringLiteral("-") || t == QStringLiteral("+") || t.endsWith(QLatin1Char('e'), Qt::CaseInsensitive) ||
        t.endsWith(QStringLiteral("e-"), Qt::CaseInsensitive) || t.endsWith(locale().decimalPoint())) {
        return QValidator::Intermediate;
    }
    bool ok = false;
    double v = locale().toDouble(t, &ok);
    if (!ok) {
        v = t.toDouble(&ok);
    }
    if (!ok) {
        return QValidator::Invalid;
    }
    return (v >= minimum() && v <= maximum()) ? QValidator::Acceptable : QValidator::Intermediate;
}

} // namespace lathe::ui
