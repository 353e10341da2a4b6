// NumberSpinBox: a QDoubleSpinBox that shows the shortest exact form of its value (0.001, 1e-08, 250)
// instead of a fixed number of decimals, so a learning rate of 1e-8 is neither rounded to 0 nor padded.
#pragma once

#include <QDoubleSpinBox>

namespace lathe::ui {

class NumberSpinBox : public QDoubleSpinBox {
    Q_OBJECT
public:
    explicit NumberSpinBox(QWidget* parent = nullptr);
    QString textFromValue(double value) const override;
    double valueFromText(const QString& text) const override;
    QValidator::State validate(QString& input, int& pos) const override;
};

} // namespace lathe::ui
