// RooflineChart: runs placed on their devices' rooflines (engine/measure/roofline.h). x: arithmetic intensity
// (FLOP per byte of compulsory traffic), y: achieved GFLOP/s, both logarithmic. Each run is a line through its
// timed batch sizes (intensity grows with the batch, as the weights are read once per batch); each device
// whose peaks `lathe-cli bench peaks` stored draws its roofs: memory bandwidth x intensity up to the f32 GEMM
// peak, and a dashed in-cache roof above it (a model whose weights stay in cache can run above the memory roof).
#pragma once

#include "engine/store/run_store.h"

#include <QString>
#include <QWidget>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

class QLabel;

namespace lathe::ui {

class ChartView;

class RooflineChart : public QWidget {
    Q_OBJECT
public:
    struct RunPoints {
        std::int64_t runId = 0;
        QString label;  // "#12 mlp-int8"
        QString family; // as ParetoChart::familyOf
        QString device; // DeviceInfo::name, as environment_json's device.name
        // (batch, intensity FLOP/B, achieved GFLOP/s), by batch
        struct At {
            std::int64_t batch = 0;
            double intensity = 0, gflops = 0;
        };
        std::vector<At> points;
    };

    explicit RooflineChart(QWidget* parent = nullptr);

    // The run's points from its summary keys (arithmetic_intensity@b<batch> with achieved_tflops@b<batch>);
    // empty when it has none (runs measured before Lathe recorded them).
    static RunPoints fromSummary(std::int64_t runId, const QString& label, const QString& family,
                                 const QString& device, const std::map<std::string, double>& summary);

    // Runs without points are left out; peaks of devices no run used are not drawn.
    void setData(const std::vector<RunPoints>& runs, const std::vector<DevicePeak>& peaks);
    bool hasPoints() const { return m_pointCount > 0; }
    int pointCount() const { return m_pointCount; }
    // Devices drawn with their roofs, and those with runs but no stored peaks.
    const QStringList& roofDevices() const { return m_roofDevices; }
    const QStringList& devicesWithoutPeaks() const { return m_missing; }
    ChartView* view() const { return m_view; }
    QLabel* noteLabel() const { return m_note; }

signals:
    void runActivated(std::int64_t runId);

private:
    ChartView* m_view;
    QLabel* m_note;
    int m_pointCount = 0;
    QStringList m_roofDevices, m_missing;
};

} // namespace lathe::ui
