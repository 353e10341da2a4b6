// ChartStyle: how the series of one chart stay apart. Runs take hues from a qualitative palette; the
// series of one run (batch sizes, measure labels) take dash and marker styles. A chart showing a
// single run gives its series distinct hues instead. Also the legend entry that draws such a style.
#pragma once

#include <qcustomplot.h>

#include <QColor>
#include <QPen>
#include <QString>

namespace lathe::ui {

struct SeriesLook {
    QColor color;
    Qt::PenStyle dash = Qt::SolidLine;
    QCPScatterStyle::ScatterShape marker = QCPScatterStyle::ssCircle;
};

// The i-th colour of the qualitative palette (Okabe-Ito first: colour-blind safe, then Tableau).
QColor paletteColor(int index);
// Run `runIndex` of `runCount` in a chart, its series `variantIndex` (0-based, in order of arrival).
SeriesLook seriesLook(int runIndex, int variantIndex, int runCount);

// One legend line: a swatch (line and/or marker) and a text.
struct LegendEntry {
    QPen pen;
    QCPScatterStyle scatter;
    bool line = true;
    QString text;
    QString toolTip;
};

// A legend item that draws a LegendEntry; the dashboard's legends describe styles (a run's hue, a
// batch size's dash), not single graphs, so they stay short for a sweep.
class LegendSwatch : public QCPAbstractLegendItem {
    Q_OBJECT
public:
    LegendSwatch(QCPLegend* legend, LegendEntry entry);
    const LegendEntry& entry() const { return m_entry; }

protected:
    void draw(QCPPainter* painter) override;
    QSize minimumOuterSizeHint() const override;

private:
    LegendEntry m_entry;
};

} // namespace lathe::ui
