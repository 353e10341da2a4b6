// ChartView: one QCustomPlot with the workbench's interactions: drag to pan, wheel to zoom, double-click
// or "Reset view" to fit, a hover read-out of the nearest point, log/linear axes from the context menu,
// a legend below the plot (never over the data) and PNG/PDF export.
#pragma once

#include "ui/charts/chart_style.h"

#include <QWidget>

#include <vector>

class QCustomPlot;
class QCPAxis;
class QCPGraph;
class QCPItemTracer;
class QCPItemText;
class QLabel;
class QMenu;

namespace lathe::ui {

class ChartView : public QWidget {
    Q_OBJECT
public:
    // A long legend shows this many rows; the rest is summed up in a last entry.
    static constexpr int kMaxLegendRows = 4;

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

    // Logarithmic or linear scale for one of the plot's axes; ticks follow the visible span.
    void setLogScale(QCPAxis* axis, bool log, double base = 10);
    bool isLogScale(QCPAxis* axis) const;
    // Replaces the legend. Entries wrap into as many columns as the width allows.
    void setLegendEntries(const std::vector<LegendEntry>& entries);
    // The legend's items as shown (capped at kMaxLegendRows rows).
    int legendItemCount() const;
    void setLegendShown(bool on);
    bool legendShown() const;
    // The right-click menu: reset view, legend, log x / log y, export (the caller owns it).
    QMenu* createContextMenu(QWidget* parent);

signals:
    void replotted();

protected:
    void contextMenuEvent(QContextMenuEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;

private:
    void onMouseMove(QMouseEvent* event);
    void exportWithDialog();
    void fitToData();
    void updateTicker(QCPAxis* axis);
    void layoutLegend();

    QLabel* m_title;
    QCustomPlot* m_plot;
    QCPItemTracer* m_tracer;
    QCPItemText* m_readout;
    std::vector<LegendEntry> m_legend;
    int m_legendColumns = 0;
    bool m_follow = true;
    int m_replots = 0;
};

} // namespace lathe::ui
