// RunProgress: progress of the running experiment: a bar with the step in progress, run k of N and
// the estimated time left.
#pragma once

#include <QWidget>

class QLabel;
class QProgressBar;

namespace lathe::ui {

class RunProgress : public QWidget {
    Q_OBJECT
public:
    explicit RunProgress(QWidget* parent = nullptr);
    void startExperiment(const QString& name, int runCount);
    void setRun(int index, int total, const QString& label); // index from 0
    void setProgress(double fraction, const QString& step, double etaS);
    void finish(const QString& message);
    QString text() const;
    QProgressBar* bar() const { return m_bar; }

    static QString etaText(double seconds);

private:
    void updateLabel();
    QProgressBar* m_bar;
    QLabel* m_label;
    QString m_step, m_runLabel;
    int m_index = 0, m_total = 0;
    double m_etaS = -1;
};

} // namespace lathe::ui
