// MainWindow: menus, toolbar, docks and the signal wiring between widgets and the engine thread.
#include "app/gui/main_window.h"

#include "ui/report/report.h"

#include "app/cluster/slurm.h"
#include "app/gui/app_controller.h"
#include "engine/store/run_store.h"
#include "ui/charts/chart_view.h"
#include "ui/charts/live_dashboard.h"
#include "ui/charts/plot_pump.h"
#include "ui/common/icons.h"
#include "ui/devices/devices_panel.h"
#include "ui/editor/experiment_editor.h"
#include "ui/library/experiment_library.h"
#include "ui/report/report.h"
#include "ui/run/log_pane.h"
#include "ui/run/run_progress.h"
#include "ui/runs/run_details.h"
#include "ui/search/search_view.h"
#include "ui/runs/runs_table_model.h"
#include "ui/runs/runs_view.h"
#include "ui/runs/submissions_model.h"
#include "ui/runs/submissions_view.h"
#include "ui/settings/app_settings.h"
#include "ui/settings/settings_dialog.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QSaveFile>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTimer>
#include <QToolBar>

#include <nlohmann/json.hpp>

#include <utility>

namespace lathe::app {

using namespace lathe::ui;

MainWindow::MainWindow(AppController* controller, QWidget* parent, std::shared_ptr<JobStateSource> jobStates)
    : QMainWindow(parent), m_controller(controller), m_editor(new ExperimentEditor), m_dashboard(new LiveDashboard),
      m_pump(new PlotPump(m_dashboard, this)), m_runsModel(new RunsTableModel(this)),
      m_runsView(new RunsView(m_runsModel)), m_submissionsModel(new SubmissionsModel(m_runsModel, this)),
      m_submissionsView(new SubmissionsView(m_submissionsModel)), m_details(new RunDetails), m_search(new SearchView), m_log(new LogPane),
      m_progress(new RunProgress), m_library(new ExperimentLibrary(this)), m_devices(new DevicesPanel),
      m_tabs(new QTabWidget(this)), m_deviceLabel(new QLabel(this)), m_droppedLabel(new QLabel(this)) {
    setObjectName(QStringLiteral("mainWindow"));
    setWindowIcon(applicationIcon());
    m_pump->setRing(&controller->sampleRing());

    m_tabs->setDocumentMode(true);
    m_tabs->addTab(m_editor, tr("Setup"));
    m_tabs->addTab(m_dashboard, tr("Live"));
    m_tabs->addTab(m_runsView, tr("Runs"));
    m_tabs->addTab(m_details, tr("Run details"));
    m_tabs->addTab(m_search, tr("Search"));
    // A search's winner opens in the editor as a plain experiment; a trial's point opens its run.
    connect(m_search, &SearchView::openExperimentRequested, this, [this](const QString& text) {
        m_editor->setDocument(nlohmann::json::parse(text.toStdString()));
        m_tabs->setCurrentWidget(m_editor);
    });
    connect(m_search, &SearchView::runActivated, this, [this](std::int64_t runId) { compareRuns({runId}); });
    setCentralWidget(m_tabs);

    addDockWidget(Qt::LeftDockWidgetArea, m_library);
    auto* logDock = new QDockWidget(tr("Log"), this);
    logDock->setObjectName(QStringLiteral("logDock"));
    logDock->setWidget(m_log);
    addDockWidget(Qt::BottomDockWidgetArea, logDock);
    auto* devicesDock = new QDockWidget(tr("Devices"), this);
    devicesDock->setObjectName(QStringLiteral("devicesDock"));
    devicesDock->setWidget(m_devices);
    addDockWidget(Qt::LeftDockWidgetArea, devicesDock);
    splitDockWidget(m_library, devicesDock, Qt::Vertical);
    resizeDocks({m_library, devicesDock}, {420, 160}, Qt::Vertical);
    resizeDocks({m_library}, {260}, Qt::Horizontal);
    resizeDocks({logDock}, {140}, Qt::Vertical);

    // Status bar: progress, dropped samples (only when there are some), device, engine version.
    statusBar()->addWidget(m_progress, 1);
    m_droppedLabel->setStyleSheet(QStringLiteral("color: #d55e00;"));
    m_droppedLabel->setVisible(false);
    statusBar()->addPermanentWidget(m_droppedLabel);
    m_deviceLabel->setObjectName(QStringLiteral("deviceLabel"));
    m_deviceLabel->setText(tr("Device: %1").arg(m_devices->autoDeviceText()));
    statusBar()->addPermanentWidget(m_deviceLabel);
    statusBar()->addPermanentWidget(new QLabel(tr("Lathe %1").arg(DevicesPanel::engineVersion()), this));

    buildActions();
    buildMenus();
    connectEngine();

    connect(m_editor, &ExperimentEditor::modifiedChanged, this, [this](bool modified) {
        updateTitle();
        if (!m_editor->filePath().isEmpty()) m_library->setModified(m_editor->filePath(), modified);
    });
    connect(m_editor, &ExperimentEditor::documentChanged, this, &MainWindow::updateTitle);
    connect(m_library, &ExperimentLibrary::openRequested, this, [this](const QString& path) {
        if (maybeSave()) openExperiment(path);
    });
    connect(m_library, &ExperimentLibrary::fileRenamed, this, [this](const QString& from, const QString& to) {
        if (m_editor->filePath() == from) {
            QString error;
            m_editor->save(to, &error);
        }
    });
    connect(m_runsView, &RunsView::openRequested, this, &MainWindow::openRun);
    connect(m_runsView, &RunsView::compareRequested, this, &MainWindow::compareRuns);
    connect(m_details, &RunDetails::runActivated, this, &MainWindow::openRun);
    connect(m_runsView, &RunsView::rerunRequested, this, &MainWindow::rerun);
    connect(m_runsView, &RunsView::exportRequested, this, [this](const QList<qint64>& ids) { exportRuns(ids); });
    connect(m_runsView, &RunsView::deleteRequested, m_controller, &AppController::deleteRuns);
    connect(m_pump, &PlotPump::droppedChanged, this, [this](quint64 dropped) {
        m_droppedLabel->setVisible(dropped > 0);
        m_droppedLabel->setText(tr("%1 samples dropped").arg(dropped));
    });
    // Sweeps submitted to Slurm, above the runs: squeue/sacct run on a thread of their own, each command
    // killed after 15 s, and rows say "controller unreachable" when no answer came within 20 s.
    m_submissionsModel->setStateSource(jobStates ? std::move(jobStates) : std::make_shared<cluster::SlurmStateSource>(15));
    m_submissionsModel->setAnswerTimeout(20000);
    m_submissionsModel->setPollInterval(5000);
    m_runsView->setTopPanel(m_submissionsView);
    connect(m_submissionsView, &SubmissionsView::showRunsRequested, this,
            [this](const QString& name) { m_runsView->filterEdit()->setText(name); });
    connect(m_submissionsView, &SubmissionsView::mergeRequested, this, [this](const QString& name, const QStringList& shards) {
        m_log->appendMessage(0, tr("merging %n shard(s) of \"%1\"", nullptr, static_cast<int>(shards.size())).arg(name));
        m_controller->mergeShards(shards);
    });
    connect(m_controller, &AppController::shardsMerged, this,
            [this](int merged, int broken, const QString& report, const QString& error) {
                if (!error.isEmpty()) {
                    m_log->appendMessage(2, tr("merge failed: %1").arg(error));
                    return;
                }
                for (const QString& line : report.split(QLatin1Char('\n'), Qt::SkipEmptyParts))
                    m_log->appendMessage(line.startsWith(QLatin1String("broken")) ? 2 : 0, line);
                m_log->appendMessage(broken > 0 ? 1 : 0, tr("%n run(s) merged", nullptr, merged) +
                                                             (broken > 0 ? tr(", %n broken shard(s)", nullptr, broken) : QString()));
                m_runsModel->refresh();
            });
    connect(m_runsModel, &RunsTableModel::storeError, this, [this](const QString& message) {
        statusBar()->showMessage(tr("Run database: %1").arg(message), 10000);
    });

    if (!m_controller->databaseError().isEmpty()) {
        m_log->appendMessage(2, tr("cannot open the run database: %1").arg(m_controller->databaseError()));
    } else if (!m_runsModel->open(m_controller->databasePath())) {
        m_log->appendMessage(2, tr("cannot read the run database: %1").arg(m_runsModel->lastError()));
    }
    m_runsModel->setPollInterval(1000); // runs started by lathe-cli appear without a restart
    m_log->appendMessage(0, tr("Lathe %1, run database %2").arg(DevicesPanel::engineVersion(), m_controller->databasePath()));

    setRunning(false);
    updateTitle();
    resize(1500, 950);
    restoreLayout();
}

MainWindow::~MainWindow() = default;

void MainWindow::buildActions() {
    auto make = [this](const QString& text, const QString& icon, QStyle::StandardPixmap fallback, const QKeySequence& key,
                       auto slot) {
        auto* a = new QAction(toolbarIcon(icon, fallback), text, this);
        if (!key.isEmpty()) a->setShortcut(key);
        a->setToolTip(key.isEmpty() ? text : QStringLiteral("%1 (%2)").arg(text, key.toString(QKeySequence::NativeText)));
        connect(a, &QAction::triggered, this, slot);
        addAction(a);
        return a;
    };
    m_newAction = make(tr("&New experiment"), QStringLiteral("new"), QStyle::SP_FileIcon, QKeySequence::New, [this] {
        if (maybeSave()) newExperiment();
    });
    m_openAction = make(tr("&Open experiment..."), QStringLiteral("open"), QStyle::SP_DialogOpenButton, QKeySequence::Open, [this] {
        if (!maybeSave()) return;
        const QString dir = m_editor->filePath().isEmpty() ? ExperimentLibrary::userDir() : QFileInfo(m_editor->filePath()).absolutePath();
        const QString path = QFileDialog::getOpenFileName(this, tr("Open experiment"), dir, tr("Experiments (*.json)"));
        if (!path.isEmpty()) openExperiment(path);
    });
    m_saveAction = make(tr("&Save"), QStringLiteral("save"), QStyle::SP_DialogSaveButton, QKeySequence::Save, [this] { saveExperiment(); });
    m_saveAsAction = make(tr("Save &as..."), QStringLiteral("save-as"), QStyle::SP_DialogSaveButton, QKeySequence(QStringLiteral("Ctrl+Shift+S")),
                          [this] { saveExperimentAs(); });
    m_runAction = make(tr("&Run"), QStringLiteral("run"), QStyle::SP_MediaPlay, QKeySequence(QStringLiteral("Ctrl+R")), [this] { runExperiment(); });
    m_cancelAction = make(tr("&Cancel run"), QStringLiteral("cancel"), QStyle::SP_MediaStop, QKeySequence(Qt::Key_Escape), [this] { cancelRun(); });
    m_settingsAction = make(tr("&Settings..."), QStringLiteral("settings"), QStyle::SP_FileDialogDetailedView, QKeySequence::Preferences,
                            [this] { showSettings(); });
    m_resetZoomAction = make(tr("Reset &zoom"), QStringLiteral("zoom-reset"), QStyle::SP_BrowserReload, QKeySequence(QStringLiteral("Ctrl+0")), [this] {
        LiveDashboard* d = m_tabs->currentWidget() == m_details ? m_details->dashboard() : m_dashboard;
        for (ChartView* c : d->charts()) c->resetView();
    });
    m_exportChartAction = make(tr("&Export charts..."), QStringLiteral("export"), QStyle::SP_DialogSaveButton, QKeySequence(QStringLiteral("Ctrl+E")),
                               [this] { exportCurrentChart(); });
    m_filterAction = make(tr("&Filter runs"), QStringLiteral("filter"), QStyle::SP_FileDialogContentsView, QKeySequence::Find, [this] {
        m_tabs->setCurrentWidget(m_runsView);
        m_runsView->filterEdit()->setFocus();
        m_runsView->filterEdit()->selectAll();
    });
    m_quitAction = make(tr("&Quit"), QString(), QStyle::SP_DialogCloseButton, QKeySequence::Quit, [this] { close(); });

    auto* toolbar = addToolBar(tr("Main"));
    toolbar->setObjectName(QStringLiteral("mainToolbar"));
    toolbar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    toolbar->addAction(m_newAction);
    toolbar->addAction(m_openAction);
    toolbar->addAction(m_saveAction);
    toolbar->addSeparator();
    toolbar->addAction(m_runAction);
    toolbar->addAction(m_cancelAction);
    toolbar->addSeparator();
    toolbar->addAction(m_resetZoomAction);
    toolbar->addAction(m_exportChartAction);
    toolbar->addAction(m_filterAction);
    toolbar->addSeparator();
    toolbar->addAction(m_settingsAction);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addActions({m_newAction, m_openAction, m_saveAction, m_saveAsAction});
    file->addSeparator();
    file->addAction(m_settingsAction);
    file->addSeparator();
    file->addAction(m_quitAction);
    QMenu* run = menuBar()->addMenu(tr("&Run"));
    run->addActions({m_runAction, m_cancelAction});
    QMenu* view = menuBar()->addMenu(tr("&View"));
    const QString tabNames[] = {tr("&Setup"), tr("&Live charts"), tr("R&uns"), tr("Run &details"), tr("Se&arch")};
    for (int i = 0; i < 5; ++i) {
        QAction* a = view->addAction(tabNames[i], this, [this, i] { m_tabs->setCurrentIndex(i); });
        a->setShortcut(QKeySequence(QStringLiteral("Ctrl+%1").arg(i + 1)));
        addAction(a);
    }
    view->addSeparator();
    view->addActions({m_resetZoomAction, m_exportChartAction, m_filterAction});
    view->addSeparator();
    for (QDockWidget* dock : findChildren<QDockWidget*>()) view->addAction(dock->toggleViewAction());
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About Lathe"), this, [this] {
        QMessageBox::about(this, tr("About Lathe"),
                           tr("<b>Lathe %1</b><p>A workbench for inference-optimization experiments on neural networks.</p>"
                              "<p>Run database: %2</p>").arg(DevicesPanel::engineVersion(), m_controller->databasePath().toHtmlEscaped()));
    });
}

void MainWindow::connectEngine() {
    connect(m_controller, &AppController::runningChanged, this, &MainWindow::setRunning);
    connect(m_controller, &AppController::experimentStarted, this, [this](const QString& name, int runCount) {
        m_progress->startExperiment(name, runCount);
        m_followRunningSearch = true;
        m_log->appendMessage(0, tr("experiment %1: %n run(s)", nullptr, runCount).arg(name));
    });
    connect(m_controller, &AppController::runStarted, this, [this](qint64 runId, const QString& label, int index, int total) {
        m_dashboard->setRunLabel(runId, label.isEmpty() ? QStringLiteral("#%1").arg(runId) : QStringLiteral("#%1 %2").arg(runId).arg(label));
        m_progress->setRun(index, total, label);
        m_runsModel->refresh();
        if (RunStore* store = m_runsModel->store()) {
            if (auto run = store->run(runId)) m_deviceLabel->setText(tr("Device: %1").arg(QString::fromStdString(run->device)));
        }
    });
    connect(m_controller, &AppController::progressChanged, m_progress, &RunProgress::setProgress);
    connect(m_controller, &AppController::logMessage, m_log, &LogPane::appendMessage);
    connect(m_controller, &AppController::runFinished, this, [this](qint64 runId, const QString& status, const QString&) {
        m_log->appendMessage(status == QLatin1String("done") ? 0 : 1, tr("run #%1 %2").arg(runId).arg(status));
        m_runsModel->refresh();
        // A search's trial: its search view draws the new point. The view follows the running search (the
        // next one too, when a sweep runs one search per plan) unless another search was opened meanwhile.
        if (RunStore* store = m_runsModel->store()) {
            const auto run = store->run(runId);
            if (run && run->parentRunId &&
                (m_followRunningSearch || m_search->searchRunId() == 0 || m_search->searchRunId() == *run->parentRunId)) {
                const auto parent = store->run(*run->parentRunId);
                if (parent && parent->strategyChain == "search") m_search->showSearch(*store, parent->id);
            }
        }
    });
    connect(m_controller, &AppController::experimentFinished, this, [this](bool cancelled, const QString& error) {
        m_pump->tick(); // the last samples
        m_pump->stop();
        m_progress->finish(!error.isEmpty() ? tr("Failed: %1").arg(error) : cancelled ? tr("Cancelled") : tr("Finished"));
        m_runsModel->refresh();
        if (!m_pendingDatabase.isEmpty() && !m_closeAfterRun) {
            const QString path = std::exchange(m_pendingDatabase, QString());
            const QString switchError = switchDatabase(path);
            if (!switchError.isEmpty()) AppSettings::setDatabasePath(m_controller->databasePath());
        }
        if (m_closeAfterRun) {
            QTimer::singleShot(0, this, &QWidget::close);
        }
    });
    connect(m_controller, &AppController::runsDeleted, this, [this](int count, const QString& error) {
        if (!error.isEmpty()) m_log->appendMessage(2, tr("deleting runs failed: %1").arg(error));
        else m_log->appendMessage(0, tr("%n run(s) deleted", nullptr, count));
        m_runsModel->refresh();
    });
}

void MainWindow::updateTitle() {
    setWindowTitle(tr("%1[*] — Lathe").arg(m_editor->filePath().isEmpty() ? QString::fromStdString(m_editor->document().value("name", std::string("untitled")))
                                                                          : QFileInfo(m_editor->filePath()).fileName()));
    setWindowModified(m_editor->isModified());
}

void MainWindow::setRunning(bool running) {
    m_runAction->setEnabled(!running);
    m_cancelAction->setEnabled(running);
}

bool MainWindow::openExperiment(const QString& path) {
    QString error;
    if (!m_editor->load(path, &error)) {
        m_log->appendMessage(2, error);
        QMessageBox::warning(this, tr("Open experiment"), error);
        return false;
    }
    m_library->setCurrent(path);
    m_tabs->setCurrentWidget(m_editor);
    updateTitle();
    return true;
}

void MainWindow::newExperiment() {
    m_editor->setDocument(ExperimentEditor::newDocument());
    m_library->setCurrent({});
    m_tabs->setCurrentWidget(m_editor);
}

bool MainWindow::saveExperiment() {
    // Bundled examples are read-only: saving one saves a copy among the user's experiments.
    const QString path = m_editor->filePath();
    if (path.isEmpty() || !QFileInfo(path).isWritable()) return saveExperimentAs();
    QString error;
    if (!m_editor->save(path, &error)) {
        QMessageBox::warning(this, tr("Save experiment"), error);
        return false;
    }
    m_library->setModified(path, false);
    statusBar()->showMessage(tr("Saved %1").arg(path), 4000);
    return true;
}

bool MainWindow::saveExperimentAs() {
    const QString name = QString::fromStdString(m_editor->document().value("name", std::string("experiment")));
    const QString path = QFileDialog::getSaveFileName(this, tr("Save experiment as"), ExperimentLibrary::userDir() + QLatin1Char('/') + name + QStringLiteral(".json"),
                                                      tr("Experiments (*.json)"));
    if (path.isEmpty()) return false;
    QString error;
    const QString old = m_editor->filePath();
    if (!m_editor->save(path, &error)) {
        QMessageBox::warning(this, tr("Save experiment"), error);
        return false;
    }
    if (!old.isEmpty()) m_library->setModified(old, false);
    m_library->refresh();
    m_library->setCurrent(path);
    return true;
}

bool MainWindow::maybeSave() {
    if (!m_editor->isModified()) return true;
    const auto answer = QMessageBox::question(this, tr("Unsaved changes"), tr("Save the changes to %1?").arg(m_editor->displayName()),
                                              QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
    if (answer == QMessageBox::Save) return saveExperiment();
    return answer == QMessageBox::Discard;
}

bool MainWindow::runExperiment() {
    if (m_controller->isRunning()) return false;
    m_editor->applyJsonText();
    m_editor->validateNow();
    if (!m_editor->issues().empty() || m_editor->hasSyntaxError()) {
        const QString first = m_editor->issues().empty() ? tr("JSON syntax error")
                                                         : QString::fromStdString(m_editor->issues().front().pointer + ": " + m_editor->issues().front().message);
        m_log->appendMessage(2, tr("the experiment is not valid (%1); fix it before running").arg(first));
        statusBar()->showMessage(tr("Not run: %1").arg(first), 8000);
        m_tabs->setCurrentWidget(m_editor);
        return false;
    }
    QString device;
    const std::string docDevice = m_editor->document().value("device", std::string("auto"));
    if (docDevice == "auto" && AppSettings::defaultDevice() != QStringLiteral("auto")) device = AppSettings::defaultDevice();
    m_dashboard->clear();
    if (!m_controller->startRun(m_editor->document(), m_editor->filePath(), device)) return false;
    m_pump->start();
    m_tabs->setCurrentWidget(m_dashboard);
    return true;
}

void MainWindow::cancelRun() {
    if (!m_controller->isRunning()) return;
    m_controller->cancelRun();
    m_progress->finish(tr("Cancelling..."));
    m_log->appendMessage(1, tr("cancel requested; the run stops after the current batch"));
}

void MainWindow::openRun(qint64 runId) {
    // A search's own run opens the search view; any other run the run details.
    if (RunStore* store = m_runsModel->store()) {
        const auto run = store->run(runId);
        if (run && run->strategyChain == "search" && m_search->showSearch(*store, runId)) {
            m_followRunningSearch = false; // the researcher chose this one
            m_tabs->setCurrentWidget(m_search);
            return;
        }
    }
    compareRuns({runId});
}

void MainWindow::compareRuns(const QList<qint64>& runIds) {
    RunStore* store = m_runsModel->store();
    if (!store) return;
    try {
        m_details->showRuns(*store, runIds);
    } catch (const std::exception& e) {
        m_log->appendMessage(2, QString::fromUtf8(e.what()));
        return;
    }
    m_tabs->setCurrentWidget(m_details);
}

void MainWindow::rerun(qint64 runId) {
    RunStore* store = m_runsModel->store();
    if (!store) return;
    const auto run = store->run(runId);
    if (!run) return;
    const auto doc = nlohmann::json::parse(run->configJson, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        m_log->appendMessage(2, tr("run #%1 has no stored configuration to re-run").arg(runId));
        return;
    }
    if (!maybeSave()) return;
    m_editor->setDocument(doc);
    m_editor->setModified(true);
    runExperiment();
}

void MainWindow::exportRuns(const QList<qint64>& runIds, const QString& chosenPath) {
    RunStore* store = m_runsModel->store();
    if (!store) return;
    const QString path = !chosenPath.isEmpty()
                             ? chosenPath
                             : QFileDialog::getSaveFileName(this, tr("Export runs"), QStringLiteral("report.html"),
                                                            tr("HTML report (*.html);;PDF report (*.pdf);;Markdown report (*.md);;"
                                                               "JSON, the numbers (*.json)"));
    if (path.isEmpty()) return;
    if (!path.endsWith(QLatin1String(".json"), Qt::CaseInsensitive)) {
        try {
            writeReport(*store, runIds, path, reportFormatForPath(path));
            statusBar()->showMessage(tr("Report of %n run(s) written to %1", nullptr, static_cast<int>(runIds.size())).arg(path), 5000);
        } catch (const std::exception& e) {
            m_log->appendMessage(2, QString::fromUtf8(e.what()));
        }
        return;
    }
    nlohmann::json out = nlohmann::json::array();
    for (qint64 id : runIds) {
        const auto r = store->run(id);
        if (!r) continue;
        nlohmann::json summary = nlohmann::json::object();
        for (const auto& [k, v] : r->summary) summary[k] = v;
        out.push_back({{"id", r->id}, {"name", r->name}, {"experiment", r->experimentName}, {"status", r->status},
                       {"model", r->model}, {"dataset", r->dataset}, {"device", r->device}, {"steps", r->strategyChain},
                       {"tags", r->tags}, {"started_at", r->startedAt}, {"finished_at", r->finishedAt}, {"error", r->error},
                       {"summary", summary}, {"config", nlohmann::json::parse(r->configJson, nullptr, false).is_discarded()
                                                             ? nlohmann::json(r->configJson) : nlohmann::json::parse(r->configJson)}});
    }
    QSaveFile file(path);
    if (file.open(QIODevice::WriteOnly)) {
        file.write(QByteArray::fromStdString(out.dump(2) + "\n"));
        file.commit();
        statusBar()->showMessage(tr("Exported %n run(s) to %1", nullptr, static_cast<int>(out.size())).arg(path), 5000);
    }
}

void MainWindow::showSettings() {
    SettingsDialog dialog(this);
    if (dialog.exec() != QDialog::Accepted) return;
    const QString error = applySettings(dialog);
    if (!error.isEmpty()) {
        QMessageBox::warning(this, tr("Settings"), tr("The run database stays %1:\n%2").arg(m_controller->databasePath(), error));
    }
}

QString MainWindow::applySettings(SettingsDialog& dialog) {
    const QString previous = AppSettings::databasePath();
    if (!dialog.apply()) return {};
    const QString error = switchDatabase(AppSettings::databasePath());
    if (!error.isEmpty()) AppSettings::setDatabasePath(previous);
    return error;
}

QString MainWindow::switchDatabase(const QString& path) {
    if (path == m_controller->databasePath()) return {};
    if (m_controller->isRunning()) {
        m_pendingDatabase = path;
        m_log->appendMessage(0, tr("the run database switches to %1 when the running experiment has finished").arg(path));
        return {};
    }
    const QString error = m_controller->setDatabasePath(path);
    if (!error.isEmpty()) {
        m_log->appendMessage(2, tr("cannot open the run database %1: %2").arg(path, error));
        return error;
    }
    m_pendingDatabase.clear();
    if (!m_runsModel->open(path)) {
        m_log->appendMessage(2, tr("cannot read the run database: %1").arg(m_runsModel->lastError()));
    }
    m_details->clear();
    m_dashboard->clear();
    m_log->appendMessage(0, tr("run database %1").arg(path));
    statusBar()->showMessage(tr("Run database: %1").arg(path), 5000);
    return {};
}

void MainWindow::exportCurrentChart() {
    LiveDashboard* d = m_tabs->currentWidget() == m_details ? m_details->dashboard() : m_dashboard;
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Export the charts (PNG and PDF) to"));
    if (dir.isEmpty()) return;
    int n = 0;
    for (ChartView* c : d->charts()) {
        const QString base = dir + QLatin1Char('/') + c->title().toLower().replace(QRegularExpression(QStringLiteral("[^a-z0-9]+")), QStringLiteral("-"));
        n += c->exportPng(base + QStringLiteral(".png")) ? 1 : 0;
        n += c->exportPdf(base + QStringLiteral(".pdf")) ? 1 : 0;
    }
    statusBar()->showMessage(tr("Exported %1 files to %2").arg(n).arg(dir), 5000);
}

void MainWindow::restoreLayout() {
    QSettings s;
    restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray());
    restoreState(s.value(QStringLiteral("window/state")).toByteArray());
    m_runsView->restoreState(s.value(QStringLiteral("runs/header")).toByteArray());
}

void MainWindow::saveLayout() {
    QSettings s;
    s.setValue(QStringLiteral("window/geometry"), saveGeometry());
    s.setValue(QStringLiteral("window/state"), saveState());
    s.setValue(QStringLiteral("runs/header"), m_runsView->saveState());
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (!m_closeAfterRun && !maybeSave()) {
        event->ignore();
        return;
    }
    if (m_controller->isRunning()) {
        // Cancel first and close when the engine has stored the run as cancelled: nothing hangs and
        // no transaction is cut.
        m_closeAfterRun = true;
        cancelRun();
        event->ignore();
        return;
    }
    saveLayout();
    m_pump->stop();
    m_runsModel->setPollInterval(0);
    m_submissionsModel->setPollInterval(0);
    event->accept();
}

} // namespace lathe::app
