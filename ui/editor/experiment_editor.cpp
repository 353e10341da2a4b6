// ExperimentEditor: form <-> JSON document <-> text, and validation issues at their fields.
#include "ui/editor/experiment_editor.h"

#include "engine/backends/registry.h"
#include "engine/data/dataset.h"
#include "engine/io/zoo.h"
#include "engine/strategies/strategy.h"
#include "ui/editor/schema_form.h"
#include "ui/editor/step_list_editor.h"
#include "ui/editor/sweep_editor.h"

#include <QComboBox>
#include <QFile>
#include <QFileInfo>
#include <QFontDatabase>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QRadioButton>
#include <QSaveFile>
#include <QScrollArea>
#include <QSpinBox>
#include <QSplitter>
#include <QStyle>
#include <QTabWidget>
#include <QTableWidget>
#include <QTextBlock>
#include <QVBoxLayout>

namespace lathe::ui {

namespace {
const QColor kErrorColor(213, 94, 0);

std::string unescapeToken(std::string t) {
    for (std::size_t p; (p = t.find("~1")) != std::string::npos;) t.replace(p, 2, "/");
    for (std::size_t p; (p = t.find("~0")) != std::string::npos;) t.replace(p, 2, "~");
    return t;
}

QGroupBox* group(const QString& title, QWidget* parent) {
    auto* box = new QGroupBox(title, parent);
    return box;
}
} // namespace

ExperimentEditor::ExperimentEditor(QWidget* parent) : QWidget(parent), m_tabs(new QTabWidget(this)) {
    m_tabs->addTab(buildSetupPage(), tr("Setup"));
    m_tabs->addTab(buildJsonPage(), tr("JSON"));
    m_status = new QLabel(this);
    m_status->setObjectName(QStringLiteral("validationStatus"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_tabs, 1);
    layout->addWidget(m_status);

    m_validateTimer.setSingleShot(true);
    m_validateTimer.setInterval(150);
    connect(&m_validateTimer, &QTimer::timeout, this, &ExperimentEditor::validateNow);
    m_parseTimer.setSingleShot(true);
    m_parseTimer.setInterval(400);
    connect(&m_parseTimer, &QTimer::timeout, this, &ExperimentEditor::applyJsonText);
    setDocument(newDocument());
}

nlohmann::json ExperimentEditor::newDocument() {
    nlohmann::json doc = {{"name", "untitled"},
                          {"model", {{"zoo", "mlp-784-256-128-10"}}},
                          {"dataset", {{"name", "fashion-mnist"}}},
                          {"device", "auto"},
                          {"steps", nlohmann::json::array()},
                          {"seed", 42}};
    const auto zoo = zooNames();
    if (!zoo.empty()) {
        doc["model"]["zoo"] = zoo.front();
    }
    if (const StrategySchema* train = StrategyRegistry::instance().find("train")) {
        doc["baseline"] = {{"train", SchemaForm::defaults(*train)}};
    }
    if (StrategyRegistry::instance().find("measure")) {
        doc["steps"].push_back({{"strategy", "measure"}});
    }
    return doc;
}

QWidget* ExperimentEditor::buildSetupPage() {
    auto* page = new QWidget;
    auto* column = new QVBoxLayout(page);

    // --- general
    auto* general = group(tr("Experiment"), page);
    auto* gf = new QFormLayout(general);
    m_name = new QLineEdit(general);
    m_name->setObjectName(QStringLiteral("name"));
    m_description = new QLineEdit(general);
    m_seed = new QSpinBox(general);
    m_seed->setRange(0, INT_MAX);
    m_seed->setToolTip(tr("Seeds data shuffling, initialisation and every step"));
    m_tags = new QLineEdit(general);
    m_tags->setPlaceholderText(tr("comma-separated, e.g. int8, paper"));
    gf->addRow(tr("Name"), m_name);
    gf->addRow(tr("Description"), m_description);
    gf->addRow(tr("Seed"), m_seed);
    gf->addRow(tr("Tags"), m_tags);
    connect(m_name, &QLineEdit::textEdited, this, [this](const QString& t) { setAt("/name", t.toStdString()); });
    connect(m_description, &QLineEdit::textEdited, this, [this](const QString& t) {
        t.isEmpty() ? eraseAt("/description") : setAt("/description", t.toStdString());
    });
    connect(m_seed, &QSpinBox::valueChanged, this, [this](int v) { setAt("/seed", v); });
    connect(m_tags, &QLineEdit::textEdited, this, [this](const QString& t) {
        nlohmann::json tags = nlohmann::json::array();
        for (const QString& tag : t.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
            tags.push_back(tag.trimmed().toStdString());
        }
        tags.empty() ? eraseAt("/tags") : setAt("/tags", tags);
    });

    // --- model, data, device
    auto* subject = group(tr("Model, data and device"), page);
    auto* sf = new QFormLayout(subject);
    m_modelZoo = new QComboBox(subject);
    for (const auto& name : zooNames()) {
        m_modelZoo->addItem(QString::fromStdString(name));
    }
    m_modelZoo->setToolTip(tr("An architecture of the model zoo, trained as the baseline"));
    m_modelPath = new QLineEdit(subject);
    m_modelPath->setPlaceholderText(tr("or a .safetensors file"));
    m_dataset = new QComboBox(subject);
    m_dataset->setEditable(true);
    for (const auto& name : datasetNames()) {
        m_dataset->addItem(QString::fromStdString(name));
    }
    m_dataset->setToolTip(tr("A known dataset name, or a folder holding the same IDX files"));
    m_datasetForm = new SchemaForm(datasetSectionSchema(), subject);
    m_device = new QComboBox(subject);
    m_device->setObjectName(QStringLiteral("device"));
    m_device->addItem(QStringLiteral("auto"));
    m_device->setItemData(0, tr("CUDA when a device is present, else the CPU"), Qt::ToolTipRole);
    for (const BackendEntry& entry : probeBackends()) {
        const QString name = QString::fromStdString(entry.info.available ? entry.info.device.toString() : entry.info.backend);
        m_device->addItem(name);
        const int row = m_device->count() - 1;
        m_device->setItemData(row, QString::fromStdString(entry.info.available ? entry.info.name : entry.info.reason),
                              Qt::ToolTipRole);
        if (!entry.info.available) {
            // Still selectable: a file written for a GPU server stays editable here.
            m_device->setItemData(row, QColor(Qt::gray), Qt::ForegroundRole);
        }
    }
    m_device->setEditable(true);
    sf->addRow(tr("Model"), m_modelZoo);
    sf->addRow(QString(), m_modelPath);
    sf->addRow(tr("Dataset"), m_dataset);
    sf->addRow(QString(), m_datasetForm);
    sf->addRow(tr("Device"), m_device);
    connect(m_modelZoo, &QComboBox::currentTextChanged, this, [this](const QString& t) {
        if (!m_updatingForm && m_modelPath->text().isEmpty()) {
            setAt("/model", {{"zoo", t.toStdString()}});
        }
    });
    connect(m_modelPath, &QLineEdit::editingFinished, this, [this] {
        if (m_updatingForm) {
            return;
        }
        const QString path = m_modelPath->text().trimmed();
        nlohmann::json model = path.isEmpty() ? nlohmann::json{{"zoo", m_modelZoo->currentText().toStdString()}}
                                              : nlohmann::json{{"path", path.toStdString()}};
        if (m_doc.value("model", nlohmann::json::object()) != model) {
            setAt("/model", model);
        }
    });
    connect(m_dataset, &QComboBox::currentTextChanged, this, [this](const QString& t) {
        if (!m_updatingForm) {
            setAt("/dataset/name", t.toStdString());
        }
    });
    connect(m_datasetForm, &SchemaForm::fieldEdited, this, [this](const QString& name, const QString& value) {
        setAt("/dataset/" + name.toStdString(), nlohmann::json::parse(value.toStdString()));
    });
    connect(m_device, &QComboBox::currentTextChanged, this, [this](const QString& t) {
        if (!m_updatingForm) {
            setAt("/device", t.toStdString());
        }
    });

    // --- baseline
    auto* baseline = group(tr("Baseline"), page);
    auto* bl = new QVBoxLayout(baseline);
    m_baselineTrain = new QRadioButton(tr("Train it (cached by model, data, parameters and seed)"), baseline);
    m_baselineModel = new QRadioButton(tr("Start from a saved model"), baseline);
    const StrategySchema* train = StrategyRegistry::instance().find("train");
    m_trainForm = new SchemaForm(train ? *train : StrategySchema{"train", "train", {}, {}}, baseline);
    m_baselinePath = new QLineEdit(baseline);
    m_baselinePath->setPlaceholderText(tr("model.safetensors"));
    bl->addWidget(m_baselineTrain);
    bl->addWidget(m_trainForm);
    bl->addWidget(m_baselineModel);
    bl->addWidget(m_baselinePath);
    connect(m_baselineTrain, &QRadioButton::toggled, this, [this](bool on) {
        m_trainForm->setEnabled(on);
        m_baselinePath->setEnabled(!on);
        if (m_updatingForm) {
            return;
        }
        if (on) {
            setAt("/baseline", {{"train", m_trainForm->values()}});
        } else {
            setAt("/baseline", {{"model", m_baselinePath->text().toStdString()}});
        }
    });
    connect(m_trainForm, &SchemaForm::fieldEdited, this, [this](const QString& name, const QString& value) {
        setAt("/baseline/train/" + name.toStdString(), nlohmann::json::parse(value.toStdString()));
    });
    connect(m_baselinePath, &QLineEdit::editingFinished, this, [this] {
        if (!m_updatingForm && m_baselineModel->isChecked()) {
            setAt("/baseline/model", m_baselinePath->text().toStdString());
        }
    });

    // --- steps
    auto* steps = group(tr("Steps"), page);
    auto* stl = new QVBoxLayout(steps);
    m_steps = new StepListEditor(steps);
    m_steps->setMinimumHeight(220);
    stl->addWidget(m_steps);
    connect(m_steps, &StepListEditor::stepsEdited, this, [this] { setAt("/steps", m_steps->steps()); });

    // --- sweep and measurement
    auto* sweep = group(tr("Sweep"), page);
    auto* swl = new QVBoxLayout(sweep);
    m_sweep = new SweepEditor(sweep);
    swl->addWidget(m_sweep);
    connect(m_sweep, &SweepEditor::sweepEdited, this, [this] {
        const nlohmann::json s = m_sweep->sweep();
        s.empty() ? eraseAt("/sweep") : setAt("/sweep", s);
    });
    auto* measure = group(tr("Measurement"), page);
    auto* ml = new QVBoxLayout(measure);
    m_measureForm = new SchemaForm(measureSectionSchema(), measure);
    ml->addWidget(m_measureForm);
    connect(m_measureForm, &SchemaForm::fieldEdited, this, [this](const QString& name, const QString& value) {
        setAt("/measure/" + name.toStdString(), nlohmann::json::parse(value.toStdString()));
    });

    auto* top = new QHBoxLayout;
    top->addWidget(general, 1);
    top->addWidget(subject, 1);
    column->addLayout(top);
    auto* middle = new QHBoxLayout;
    middle->addWidget(baseline, 1);
    middle->addWidget(measure, 1);
    column->addLayout(middle);
    column->addWidget(steps, 1);
    column->addWidget(sweep);

    // Pointer -> widget, for validation issues; deeper pointers resolve to their nearest listed parent.
    const std::pair<const char*, QWidget*> fixed[] = {
        {"/name", m_name},           {"/description", m_description},  {"/seed", m_seed},
        {"/tags", m_tags},           {"/model", m_modelZoo},           {"/model/zoo", m_modelZoo},
        {"/model/path", m_modelPath}, {"/model/architecture", m_modelPath}, {"/dataset", m_dataset},
        {"/dataset/name", m_dataset}, {"/device", m_device},           {"/baseline", m_baselineTrain},
        {"/baseline/model", m_baselinePath}, {"/baseline/train", m_trainForm}, {"/steps", m_steps->list()},
        {"/sweep", m_sweep->table()}, {"/measure", m_measureForm}};
    for (const auto& [pointer, widget] : fixed) {
        m_pointerWidgets[pointer] = widget;
    }
    for (const ParamField& f : m_trainForm->schema().fields) {
        m_pointerWidgets["/baseline/train/" + f.name] = m_trainForm->fieldWidget(f.name);
    }
    for (const ParamField& f : m_measureForm->schema().fields) {
        m_pointerWidgets["/measure/" + f.name] = m_measureForm->fieldWidget(f.name);
    }
    for (const ParamField& f : m_datasetForm->schema().fields) {
        m_pointerWidgets["/dataset/" + f.name] = m_datasetForm->fieldWidget(f.name);
    }

    auto* scroll = new QScrollArea;
    scroll->setWidgetResizable(true);
    scroll->setWidget(page);
    scroll->setFrameShape(QFrame::NoFrame);
    return scroll;
}

QWidget* ExperimentEditor::buildJsonPage() {
    auto* splitter = new QSplitter(Qt::Vertical);
    m_json = new QPlainTextEdit(splitter);
    m_json->setObjectName(QStringLiteral("jsonEdit"));
    m_json->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_json->setLineWrapMode(QPlainTextEdit::NoWrap);
    m_json->setTabChangesFocus(false);
    m_issueList = new QListWidget(splitter);
    m_issueList->setObjectName(QStringLiteral("issueList"));
    m_issueList->setToolTip(tr("Problems found in the experiment; double-click one to go to its field"));
    splitter->setStretchFactor(0, 4);
    splitter->setStretchFactor(1, 1);
    connect(m_json, &QPlainTextEdit::textChanged, this, [this] {
        if (!m_updatingText) {
            m_parseTimer.start();
        }
    });
    connect(m_issueList, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) { jumpToIssue(m_issueList->row(item)); });
    return splitter;
}

QString ExperimentEditor::displayName() const {
    QString name = m_filePath.isEmpty() ? QString::fromStdString(m_doc.value("name", std::string("untitled")))
                                        : QFileInfo(m_filePath).fileName();
    return m_modified ? name + QStringLiteral(" *") : name;
}

void ExperimentEditor::setModified(bool modified) {
    if (m_modified != modified) {
        m_modified = modified;
        emit modifiedChanged(modified);
    }
}

void ExperimentEditor::setDocument(const nlohmann::json& doc, const QString& filePath) {
    m_doc = doc;
    m_filePath = filePath;
    m_syntaxError.clear();
    refreshForm();
    refreshJsonText();
    setModified(false);
    validateNow();
    emit documentChanged();
}

bool ExperimentEditor::load(const QString& path, QString* error) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        if (error) *error = tr("%1: %2").arg(path, file.errorString());
        return false;
    }
    const QByteArray bytes = file.readAll();
    const auto doc = nlohmann::json::parse(bytes.constData(), bytes.constData() + bytes.size(), nullptr, false);
    if (doc.is_discarded()) {
        // Still open it: the JSON tab shows the text and where the syntax breaks.
        setDocument(nlohmann::json::object(), path);
        m_updatingText = true;
        m_json->setPlainText(QString::fromUtf8(bytes));
        m_updatingText = false;
        applyJsonText();
        setModified(false);
        m_tabs->setCurrentIndex(1);
        return true;
    }
    setDocument(doc, path);
    return true;
}

bool ExperimentEditor::save(const QString& path, QString* error) {
    applyJsonText();
    if (hasSyntaxError()) {
        if (error) *error = tr("the JSON text has a syntax error: %1").arg(m_syntaxError);
        return false;
    }
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        if (error) *error = tr("%1: %2").arg(path, file.errorString());
        return false;
    }
    file.write(QByteArray::fromStdString(m_doc.dump(2) + "\n"));
    if (!file.commit()) {
        if (error) *error = tr("%1: %2").arg(path, file.errorString());
        return false;
    }
    m_filePath = path;
    setModified(false);
    emit documentChanged();
    return true;
}

void ExperimentEditor::setAt(const std::string& pointer, const nlohmann::json& value) {
    if (m_updatingForm) {
        return;
    }
    try {
        m_doc[nlohmann::json::json_pointer(pointer)] = value;
    } catch (const nlohmann::json::exception&) {
        // The parent is of the wrong type (e.g. "model": 3 typed in the JSON tab): replace it.
        const auto slash = pointer.rfind('/');
        m_doc[nlohmann::json::json_pointer(pointer.substr(0, slash))] =
            nlohmann::json{{unescapeToken(pointer.substr(slash + 1)), value}};
    }
    documentEdited(false);
}

void ExperimentEditor::eraseAt(const std::string& pointer) {
    if (m_updatingForm) {
        return;
    }
    const auto slash = pointer.rfind('/');
    const nlohmann::json::json_pointer parent(pointer.substr(0, slash));
    if (m_doc.contains(parent) && m_doc[parent].is_object()) {
        m_doc[parent].erase(unescapeToken(pointer.substr(slash + 1)));
        documentEdited(false);
    }
}

void ExperimentEditor::documentEdited(bool fromJsonText) {
    if (!fromJsonText) {
        refreshJsonText();
    } else {
        refreshForm();
    }
    setModified(true);
    m_validateTimer.start();
    emit documentChanged();
}

void ExperimentEditor::applyJsonText() {
    m_parseTimer.stop();
    const std::string text = m_json->toPlainText().toStdString();
    try {
        nlohmann::json doc = nlohmann::json::parse(text);
        m_syntaxError.clear();
        if (doc != m_doc) {
            m_doc = std::move(doc);
            documentEdited(true);
        } else {
            showIssues();
        }
    } catch (const nlohmann::json::parse_error& e) {
        // nlohmann reports a byte offset; show line and column like the CLI does.
        const std::size_t offset = std::min<std::size_t>(e.byte, text.size());
        const int line = static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n')) + 1;
        const std::size_t lineStart = text.rfind('\n', offset > 0 ? offset - 1 : 0);
        const std::size_t column = offset - (lineStart == std::string::npos ? 0 : lineStart + 1);
        m_syntaxError = tr("line %1, column %2: %3").arg(line).arg(column).arg(QString::fromStdString(e.what()));
        m_json->setProperty("syntaxLine", line);
        showIssues();
        emit validated(static_cast<int>(m_issues.size()) + 1);
    }
}

void ExperimentEditor::refreshJsonText() {
    m_updatingText = true;
    const QString text = QString::fromStdString(m_doc.dump(2));
    if (m_json->toPlainText() != text) {
        // Keep the caret roughly where it was.
        const int pos = m_json->textCursor().position();
        m_json->setPlainText(text);
        QTextCursor c = m_json->textCursor();
        c.setPosition(std::min(pos, static_cast<int>(text.size())));
        m_json->setTextCursor(c);
    }
    m_updatingText = false;
}

void ExperimentEditor::refreshForm() {
    m_updatingForm = true;
    auto str = [](const nlohmann::json& obj, const char* key) {
        return obj.is_object() && obj.contains(key) && obj[key].is_string() ? QString::fromStdString(obj[key].get<std::string>())
                                                                           : QString();
    };
    m_name->setText(str(m_doc, "name"));
    m_description->setText(str(m_doc, "description"));
    m_seed->setValue(m_doc.contains("seed") && m_doc["seed"].is_number() ? m_doc["seed"].get<int>() : 42);
    QStringList tags;
    if (m_doc.contains("tags") && m_doc["tags"].is_array()) {
        for (const auto& t : m_doc["tags"]) {
            if (t.is_string()) tags << QString::fromStdString(t.get<std::string>());
        }
    }
    m_tags->setText(tags.join(QStringLiteral(", ")));

    const nlohmann::json model = m_doc.value("model", nlohmann::json::object());
    const QString zoo = str(model, "zoo");
    if (!zoo.isEmpty() && m_modelZoo->findText(zoo) < 0) {
        m_modelZoo->addItem(zoo); // unknown name: shown so the validation message has a place
    }
    if (!zoo.isEmpty()) {
        m_modelZoo->setCurrentText(zoo);
    }
    m_modelPath->setText(str(model, "path"));
    const nlohmann::json dataset = m_doc.value("dataset", nlohmann::json::object());
    m_dataset->setCurrentText(str(dataset, "name"));
    m_datasetForm->setValues(dataset);
    m_device->setCurrentText(m_doc.contains("device") ? str(m_doc, "device") : QStringLiteral("auto"));

    const nlohmann::json baseline = m_doc.value("baseline", nlohmann::json::object());
    const bool fromModel = baseline.is_object() && baseline.contains("model");
    m_baselineModel->setChecked(fromModel);
    m_baselineTrain->setChecked(!fromModel);
    m_trainForm->setEnabled(!fromModel);
    m_baselinePath->setEnabled(fromModel);
    m_trainForm->setValues(baseline.is_object() ? baseline.value("train", nlohmann::json::object()) : nlohmann::json::object());
    m_baselinePath->setText(str(baseline, "model"));

    m_steps->setSteps(m_doc.value("steps", nlohmann::json::array()));
    m_sweep->setSweep(m_doc.value("sweep", nlohmann::json::object()));
    m_measureForm->setValues(m_doc.value("measure", nlohmann::json::object()));
    m_updatingForm = false;
}

void ExperimentEditor::validateNow() {
    m_validateTimer.stop();
    try {
        m_issues = validateExperiment(m_doc);
    } catch (const std::exception& e) {
        m_issues = {{"", std::string("validation failed: ") + e.what()}};
    }
    showIssues();
    emit validated(static_cast<int>(m_issues.size()) + (hasSyntaxError() ? 1 : 0));
}

QWidget* ExperimentEditor::widgetForPointer(const QString& qpointer) {
    std::string pointer = qpointer.toStdString();
    if (pointer.rfind("/steps/", 0) == 0) {
        return m_steps->widgetForPointer(pointer);
    }
    if (pointer.rfind("/sweep/", 0) == 0) {
        return m_sweep->widgetForPointer(pointer);
    }
    while (!pointer.empty()) {
        auto it = m_pointerWidgets.find(pointer);
        if (it != m_pointerWidgets.end() && it->second) {
            return it->second;
        }
        pointer = pointer.substr(0, pointer.rfind('/'));
    }
    return m_name;
}

void ExperimentEditor::markWidget(QWidget* w, const QString& message) {
    if (!w) {
        return;
    }
    if (!w->property("lathe_error").toBool()) {
        w->setProperty("defaultToolTip", w->toolTip());
    }
    w->setProperty("lathe_error", true);
    w->setStyleSheet(QStringLiteral("border: 1px solid %1;").arg(kErrorColor.name()));
    w->setToolTip(message + QStringLiteral("\n\n") + w->property("defaultToolTip").toString());
    m_marked.push_back(w);
}

void ExperimentEditor::clearMarks() {
    for (QWidget* w : m_marked) {
        w->setProperty("lathe_error", false);
        w->setStyleSheet(QString());
        w->setToolTip(w->property("defaultToolTip").toString());
    }
    m_marked.clear();
    m_steps->clearErrors();
}

void ExperimentEditor::showIssues() {
    clearMarks();
    m_issueList->clear();
    if (hasSyntaxError()) {
        auto* item = new QListWidgetItem(style()->standardIcon(QStyle::SP_MessageBoxCritical),
                                         tr("JSON syntax: %1").arg(m_syntaxError), m_issueList);
        item->setForeground(kErrorColor);
    }
    for (const ValidationIssue& issue : m_issues) {
        const QString pointer = QString::fromStdString(issue.pointer);
        auto* item = new QListWidgetItem(style()->standardIcon(QStyle::SP_MessageBoxWarning),
                                         QStringLiteral("%1: %2").arg(pointer.isEmpty() ? QStringLiteral("/") : pointer,
                                                                      QString::fromStdString(issue.message)),
                                         m_issueList);
        item->setData(Qt::UserRole, pointer);
        const QString message = QString::fromStdString(issue.message);
        if (issue.pointer.rfind("/steps/", 0) == 0) {
            // "/steps/<i>/params/<field>": colour the step and frame its field.
            const QStringList parts = pointer.split(QLatin1Char('/'), Qt::SkipEmptyParts);
            const int index = parts.size() > 1 ? parts[1].toInt() : -1;
            const std::string field = parts.size() > 3 && parts[2] == QStringLiteral("params") ? parts[3].toStdString() : "";
            m_steps->setStepError(index, field, message);
        } else {
            // Resolve without moving the selection (widgetForPointer selects rows).
            std::string p = issue.pointer;
            QWidget* w = nullptr;
            if (p.rfind("/sweep", 0) == 0) {
                w = m_sweep->table();
            }
            while (!w && !p.empty()) {
                auto it = m_pointerWidgets.find(p);
                w = it != m_pointerWidgets.end() ? it->second : nullptr;
                p = p.substr(0, p.rfind('/'));
            }
            markWidget(w ? w : m_name, message);
        }
    }
    const int count = static_cast<int>(m_issues.size()) + (hasSyntaxError() ? 1 : 0);
    m_tabs->setTabText(1, count ? tr("JSON (%1)").arg(count) : tr("JSON"));
    if (count == 0) {
        m_status->setText(tr("Valid experiment"));
        m_status->setStyleSheet(QString());
    } else {
        const QString first = m_issueList->item(0)->text();
        m_status->setText(tr("%n problem(s): %1", nullptr, count).arg(first));
        m_status->setStyleSheet(QStringLiteral("color: %1;").arg(kErrorColor.name()));
    }
}

void ExperimentEditor::jumpToIssue(int row) {
    QListWidgetItem* item = m_issueList->item(row);
    if (!item) {
        return;
    }
    const QString pointer = item->data(Qt::UserRole).toString();
    if (pointer.isNull()) {
        // Syntax error: put the caret on the line.
        const int line = m_json->property("syntaxLine").toInt();
        QTextCursor c(m_json->document()->findBlockByLineNumber(std::max(0, line - 1)));
        m_json->setTextCursor(c);
        m_json->setFocus();
        return;
    }
    // Go to the field in the form, which is where the message is shown next to the value.
    QWidget* w = widgetForPointer(pointer);
    m_tabs->setCurrentIndex(0);
    if (w) {
        w->setFocus();
        if (auto* scroll = qobject_cast<QScrollArea*>(m_tabs->widget(0))) {
            scroll->ensureWidgetVisible(w);
        }
    }
}

} // namespace lathe::ui
