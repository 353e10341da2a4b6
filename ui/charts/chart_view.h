// ChartView: one QCustomPlot with the workbench's interactions: drag to pan, wheel to zoom, double-click
// or "Reset view" to fit, a hover read-out of the nearest point, and PNG/PDF export.
#pragma once

#include <QWidget>

class QCustomPlot;
class QCPGraph;
class QCPItemTracer;
class QCPItemText;
class QLabel;

namespace lathe::ui {

class ChartView : public QWidget {
    Q_OBJECT
public:
    explicit ChartView(const QString& title, QWidget* parent = nullptr);

    QCustomPlot* plot() const { return m_plot; }
    QString title() const;
    // Fits every axis to the data (also bound to double-click).
    void resetView();
    // Keeps the view fitted to the data while it streams, until the user pans or zooms.
    bool followsData() const { return m_follow; }
    void setFollowsData(bool follow) { m_follow = follow; }
    bool exportPng(const QString& path, int width = 0, int height = 0);
    bool exportPdf(const QString& path);
    // Replots now-ish: one queued replot, whatever the number of calls before the event loop runs.
    void requestReplot();
    int replotCount() const { return m_replots; }

signals:
    void replotted();

protected:
    void contextMenuEvent(QContextMenuEvent* event) override;

private:
    void onMouseMove(QMouseEvent* event);
    void exportWithDialog();

    QLabel* m_title;
    QCustomPlot* m_plot;
    QCPItemTracer* m_tracer;
    QCPItemText* m_readout;
    bool m_follow = true;
    int m_replots = 0;
};

} // namespace lathe::ui
