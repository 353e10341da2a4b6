// MainWindow: the workbench. A composition of small widgets (experiment library, editor, live
// dashboard, runs table, run details, log, devices) wired to the AppController's engine thread.
#pragma once

#include <QList>
#include <QMainWindow>

#include <memory>

class QAction;
class QLabel;
class QTabWidget;

namespace lathe::ui {
class DevicesPanel;
class ExperimentEditor;
class ExperimentLibrary;
class LiveDashboard;
class LogPane;
class PlotPump;
class RunDetails;
class SearchView;
class RunProgress;
class RunsTableModel;
class RunsView;
class SettingsDialog;
class SubmissionsModel;
class SubmissionsView;
}

namespace lathe {
class JobStateSource;
}

namespace lathe::app {

class AppController;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    enum Tab { SetupTab, LiveTab, RunsTab, DetailsTab, SearchTab };
    // jobStates: who is asked about submitted sweeps' jobs (null: Slurm, through squeue/sacct).
    explicit MainWindow(AppController* controller, QWidget* parent = nullptr,
                        std::shared_ptr<JobStateSource> jobStates = nullptr);
    ~MainWindow() override;

    ui::ExperimentEditor* editor() const { return m_editor; }
    ui::LiveDashboard* dashboard() const { return m_dashboard; }
    ui::PlotPump* pump() const { return m_pump; }
    ui::RunsTableModel* runsModel() const { return m_runsModel; }
    ui::RunsView* runsView() const { return m_runsView; }
    ui::SubmissionsModel* submissionsModel() const { return m_submissionsModel; }
    ui::SubmissionsView* submissionsView() const { return m_submissionsView; }
    ui::RunDetails* runDetails() const { return m_details; }
    ui::SearchView* searchView() const { return m_search; }
    ui::LogPane* logPane() const { return m_log; }
    ui::RunProgress* progress() const { return m_progress; }
    ui::ExperimentLibrary* library() const { return m_library; }
    ui::DevicesPanel* devices() const { return m_devices; }
    QTabWidget* tabs() const { return m_tabs; }
    QAction* runAction() const { return m_runAction; }
    QAction* cancelAction() const { return m_cancelAction; }
    QLabel* deviceLabel() const { return m_deviceLabel; }

    bool openExperiment(const QString& path);
    void newExperiment();
    bool saveExperiment();
    bool saveExperimentAs();
    // Starts the editor's experiment on the engine thread (false: invalid or already running).
    bool runExperiment();
    void cancelRun();
    void openRun(qint64 runId);
    void compareRuns(const QList<qint64>& runIds);
    void rerun(qint64 runId);
    void exportRuns(const QList<qint64>& runIds, const QString& path = {});
    // Stores the dialog's choices and switches to its run database at once. Returns the reason when
    // the database cannot be opened (the current one stays, and so does the stored setting).
    QString applySettings(ui::SettingsDialog& dialog);
    // The engine, the runs table and the run details move to `path` now, or when the running
    // experiment has finished. Returns the reason on failure.
    QString switchDatabase(const QString& path);

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    void buildActions();
    void buildMenus();
    void connectEngine();
    void updateTitle();
    void setRunning(bool running);
    bool maybeSave();
    void showSettings();
    void exportCurrentChart();
    void restoreLayout();
    void saveLayout();

    AppController* m_controller;
    ui::ExperimentEditor* m_editor;
    ui::LiveDashboard* m_dashboard;
    ui::PlotPump* m_pump;
    ui::RunsTableModel* m_runsModel;
    ui::RunsView* m_runsView;
    ui::SubmissionsModel* m_submissionsModel;
    ui::SubmissionsView* m_submissionsView;
    ui::RunDetails* m_details;
    ui::SearchView* m_search;
    bool m_followRunningSearch = true; // the search view shows the running search's trials as they finish
    ui::LogPane* m_log;
    ui::RunProgress* m_progress;
    ui::ExperimentLibrary* m_library;
    ui::DevicesPanel* m_devices;
    QTabWidget* m_tabs;
    QLabel* m_deviceLabel;
    QLabel* m_droppedLabel;
    QAction* m_newAction = nullptr;
    QAction* m_openAction = nullptr;
    QAction* m_saveAction = nullptr;
    QAction* m_saveAsAction = nullptr;
    QAction* m_runAction = nullptr;
    QAction* m_cancelAction = nullptr;
    QAction* m_settingsAction = nullptr;
    QAction* m_resetZoomAction = nullptr;
    QAction* m_exportChartAction = nullptr;
    QAction* m_filterAction = nullptr;
    QAction* m_quitAction = nullptr;
    bool m_closeAfterRun = false;
    QString m_pendingDatabase; // chosen during a run: switched to when it has finished
};

} // namespace lathe::app
