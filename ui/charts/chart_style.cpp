// ChartStyle: palette, per-series looks and the legend swatch.
#include "ui/charts/chart_style.h"

#include <iterator>

namespace lathe::ui {

namespace {
const QColor kPalette[] = {QColor(0, 114, 178),  QColor(230, 159, 0),  QColor(0, 158, 115),
                           QColor(204, 121, 167), QColor(213, 94, 0),   QColor(86, 180, 233),
                           QColor(90, 90, 90),    QColor(140, 86, 75),  QColor(188, 189, 34),
                           QColor(148, 103, 189)};
const Qt::PenStyle kDashes[] = {Qt::SolidLine, Qt::DashLine, Qt::DotLine, Qt::DashDotLine, Qt::DashDotDotLine};
const QCPScatterStyle::ScatterShape kMarkers[] = {
    QCPScatterStyle::ssCircle, QCPScatterStyle::ssSquare,  QCPScatterStyle::ssTriangle,
    QCPScatterStyle::ssDiamond, QCPScatterStyle::ssCross,  QCPScatterStyle::ssTriangleInverted,
    QCPScatterStyle::ssPlus,   QCPScatterStyle::ssStar};
constexpr int kCount(auto& array) { return static_cast<int>(std::size(array)); }
} // namespace

QColor paletteColor(int index) { return kPalette[((index % kCount(kPalette)) + kCount(kPalette)) % kCount(kPalette)]; }

SeriesLook seriesLook(int runIndex, int variantIndex, int runCount) {
    SeriesLook look;
    look.marker = kMarkers[variantIndex % kCount(kMarkers)];
    if (runCount <= 1) {
        // One run: hue tells the series apart, the marker repeats it for colour-blind readers.
        look.color = paletteColor(variantIndex);
        return look;
    }
    look.color = paletteColor(runIndex);
    look.dash = kDashes[variantIndex % kCount(kDashes)];
    return look;
}

LegendSwatch::LegendSwatch(QCPLegend* legend, LegendEntry entry) : QCPAbstractLegendItem(legend), m_entry(std::move(entry)) {
    setSelectable(false);
}

void LegendSwatch::draw(QCPPainter* painter) {
    // Text and swatch centred in the item's full height: the font's line height with descenders,
    // not the tight bounding box, so "p", "[" and "_" keep their lower parts.
    painter->setFont(font());
    painter->setPen(QPen(textColor()));
    const QSize iconSize = mParentLegend->iconSize();
    const int textX = mRect.x() + iconSize.width() + mParentLegend->iconTextPadding();
    painter->drawText(QRect(textX, mRect.y(), mRect.right() - textX + 1, mRect.height()), Qt::AlignLeft | Qt::AlignVCenter,
                      m_entry.text);
    const QRect iconRect(mRect.x(), mRect.y() + (mRect.height() - iconSize.height()) / 2, iconSize.width(), iconSize.height());
    painter->save();
    painter->setClipRect(iconRect, Qt::IntersectClip);
    painter->setAntialiasing(true);
    const double y = iconRect.center().y() + 0.5;
    if (m_entry.line) {
        QPen pen = m_entry.pen;
        pen.setWidthF(qMax(1.5, pen.widthF()));
        painter->setPen(pen);
        painter->drawLine(QLineF(iconRect.left(), y, iconRect.right() + 1, y));
    }
    if (!m_entry.scatter.isNone()) {
        m_entry.scatter.applyTo(painter, m_entry.pen);
        m_entry.scatter.drawShape(painter, iconRect.center().x() + 0.5, y);
    }
    painter->restore();
}

QSize LegendSwatch::minimumOuterSizeHint() const {
    const QFontMetrics metrics(font());
    const QSize iconSize = mParentLegend->iconSize();
    QSize result(iconSize.width() + mParentLegend->iconTextPadding() + metrics.horizontalAdvance(m_entry.text) + 2,
                 qMax(metrics.height() + 4, iconSize.height()));
    result.rwidth() += mMargins.left() + mMargins.right();
    result.rheight() += mMargins.top() + mMargins.bottom();
    return result;
}

} // namespace lathe::ui
