// ExperimentEditor: the form and the raw JSON stay in sync both ways, unknown keys survive form
// edits, steps can be added, reordered, disabled and removed, and validation issues land on the
// widget of the field they concern (and in the JSON tab's list).
#include "ui/editor/experiment_editor.h"
#include "ui/editor/schema_form.h"
#include "ui/editor/step_list_editor.h"
#include "ui/editor/sweep_editor.h"

#include "tests/support/test_support.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLineEdit>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPointer>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableWidget>
#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

namespace {
nlohmann::json textDoc(const ExperimentEditor& e) { return nlohmann::json::parse(e.jsonEdit()->toPlainText().toStdString()); }

void setJsonText(ExperimentEditor& e, const nlohmann::json& doc) {
    e.jsonEdit()->setPlainText(QString::fromStdString(doc.dump(2)));
    e.applyJsonText();
    e.validateNow();
}
} // namespace

class TestExperimentEditor : public QObject {
    Q_OBJECT
private slots:
    void newDocumentIsValid() {
        ExperimentEditor editor;
        editor.validateNow();
        QVERIFY2(editor.issues().empty(),
                 editor.issues().empty() ? "" : (editor.issues()[0].pointer + ": " + editor.issues()[0].message).c_str());
        QCOMPARE(textDoc(editor), editor.document());
        QVERIFY(!editor.isModified());
    }

    void formEditsReachTheJson() {
        ExperimentEditor editor;
        QSignalSpy modified(&editor, &ExperimentEditor::modifiedChanged);
        QTest::keyClicks(editor.nameEdit(), QStringLiteral("-v2"));
        QCOMPARE(textDoc(editor)["name"], nlohmann::json("untitled-v2"));
        QVERIFY(editor.isModified());
        QCOMPARE(modified.count(), 1);
        auto* lr = qobject_cast<QDoubleSpinBox*>(editor.trainForm()->fieldWidget("lr"));
        QVERIFY(lr);
        lr->setValue(0.005);
        QCOMPARE(textDoc(editor)["baseline"]["train"]["lr"].get<double>(), 0.005);
        editor.deviceCombo()->setCurrentText(QStringLiteral("cpu"));
        QCOMPARE(textDoc(editor)["device"], nlohmann::json("cpu"));
        auto* repeats = qobject_cast<QSpinBox*>(editor.measureForm()->fieldWidget("repeats"));
        QVERIFY(repeats);
        repeats->setValue(33);
        QCOMPARE(textDoc(editor)["measure"]["repeats"], nlohmann::json(33));
    }

    void jsonEditsReachTheForm() {
        ExperimentEditor editor;
        nlohmann::json doc = editor.document();
        doc["name"] = "from-json";
        doc["baseline"]["train"]["epochs"] = 4;
        doc["steps"] = {{{"strategy", "finetune"}, {"params", {{"epochs", 2}}}}, {{"strategy", "measure"}}};
        doc["sweep"] = {{"baseline.train.lr", {0.01, 0.001}}};
        setJsonText(editor, doc);
        QCOMPARE(editor.nameEdit()->text(), QStringLiteral("from-json"));
        QCOMPARE(qobject_cast<QSpinBox*>(editor.trainForm()->fieldWidget("epochs"))->value(), 4);
        QCOMPARE(editor.stepList()->count(), 2);
        QCOMPARE(qobject_cast<QSpinBox*>(editor.stepList()->formAt(0)->fieldWidget("epochs"))->value(), 2);
        QCOMPARE(editor.sweepEditor()->table()->rowCount(), 1);
        QCOMPARE(editor.document(), doc);
        QVERIFY(editor.isModified());
    }

    void unknownKeysSurviveFormEdits() {
        ExperimentEditor editor;
        nlohmann::json doc = editor.document();
        doc["notes"] = "keep me";
        doc["model"]["future_option"] = 3; // invalid today, but the form must not drop it
        setJsonText(editor, doc);
        QTest::keyClicks(editor.nameEdit(), QStringLiteral("x"));
        QCOMPARE(editor.document()["notes"], nlohmann::json("keep me"));
        QCOMPARE(editor.document()["model"]["future_option"], nlohmann::json(3));
    }

    void stepsAddReorderDisableRemove() {
        ExperimentEditor editor;
        setJsonText(editor, [&] {
            nlohmann::json d = editor.document();
            d["steps"] = nlohmann::json::array();
            return d;
        }());
        StepListEditor* steps = editor.stepList();
        steps->addStep("finetune");
        steps->addStep("measure");
        QCOMPARE(textDoc(editor)["steps"].size(), std::size_t(2));
        QCOMPARE(textDoc(editor)["steps"][0]["strategy"], nlohmann::json("finetune"));
        // The added step carries the schema defaults.
        QVERIFY(textDoc(editor)["steps"][0]["params"].contains("epochs"));
        steps->moveStep(1, 0);
        QCOMPARE(textDoc(editor)["steps"][0]["strategy"], nlohmann::json("measure"));
        steps->list()->item(1)->setCheckState(Qt::Unchecked);
        QCOMPARE(textDoc(editor)["steps"][1]["enabled"], nlohmann::json(false));
        steps->list()->item(1)->setCheckState(Qt::Checked);
        QVERIFY(!textDoc(editor)["steps"][1].contains("enabled"));
        steps->removeStep(0);
        QCOMPARE(textDoc(editor)["steps"].size(), std::size_t(1));
        QCOMPARE(textDoc(editor)["steps"][0]["strategy"], nlohmann::json("finetune"));
        editor.validateNow();
        QVERIFY(editor.issues().empty());
    }

    void validationIssuesAreShownAtTheirField_data() {
        QTest::addColumn<QString>("pointer");
        QTest::addColumn<QString>("json");
        QTest::newRow("baseline lr out of range") << "/baseline/train/lr" << R"({"lr": -1})";
        QTest::newRow("measure repeats wrong type") << "/measure/repeats" << R"({"repeats": "many"})";
        QTest::newRow("unknown model") << "/model/zoo" << R"({"zoo": "no-such-model"})";
        QTest::newRow("step param out of range") << "/steps/0/params/epochs" << R"({"epochs": 0})";
    }
    void validationIssuesAreShownAtTheirField() {
        QFETCH(QString, pointer);
        QFETCH(QString, json);
        ExperimentEditor editor;
        nlohmann::json doc = editor.document();
        const nlohmann::json patch = nlohmann::json::parse(json.toStdString());
        if (pointer.startsWith(QStringLiteral("/baseline"))) doc["baseline"]["train"].update(patch);
        else if (pointer.startsWith(QStringLiteral("/measure"))) doc["measure"] = patch;
        else if (pointer.startsWith(QStringLiteral("/model"))) doc["model"] = patch;
        else doc["steps"] = {{{"strategy", "finetune"}, {"params", patch}}};
        setJsonText(editor, doc);
        QVERIFY(!editor.issues().empty());
        bool found = false;
        for (const auto& issue : editor.issues()) found = found || issue.pointer == pointer.toStdString();
        QVERIFY2(found, qPrintable(QString::fromStdString(editor.issues()[0].pointer)));
        QPointer<QWidget> w = editor.widgetForPointer(pointer);
        QVERIFY(w);
        QVERIFY2(w->property("lathe_error").toBool(), qPrintable(w->objectName()));
        QVERIFY(w->toolTip().size() > 5);
        // ... and listed in the JSON tab.
        QVERIFY(editor.issueList()->count() >= 1);
        QVERIFY(editor.issueList()->item(0)->text().contains(pointer) ||
                editor.issueList()->findItems(pointer, Qt::MatchStartsWith).size() == 1);
        // Fixing it clears the mark (a step's form is rebuilt, so its old widget may be gone).
        setJsonText(editor, ExperimentEditor::newDocument());
        QVERIFY(editor.issues().empty());
        QVERIFY(!w || !w->property("lathe_error").toBool());
    }

    void syntaxErrorsKeepTheFormAndSayWhere() {
        ExperimentEditor editor;
        const nlohmann::json before = editor.document();
        editor.jsonEdit()->setPlainText(QStringLiteral("{\n  \"name\": \"x\",\n  oops\n}"));
        editor.applyJsonText();
        QVERIFY(editor.hasSyntaxError());
        QCOMPARE(editor.document(), before);
        QVERIFY(editor.issueList()->item(0)->text().contains(QStringLiteral("line 3")));
    }

    void savesAndLoadsFiles() {
        ExperimentEditor editor;
        const QString path = QString::fromStdString(test::tempDir()) + QStringLiteral("/saved.json");
        QTest::keyClicks(editor.nameEdit(), QStringLiteral("-saved"));
        QString error;
        QVERIFY2(editor.save(path, &error), qPrintable(error));
        QVERIFY(!editor.isModified());
        ExperimentEditor other;
        QVERIFY(other.load(path, &error));
        QCOMPARE(other.document(), editor.document());
        QCOMPARE(other.filePath(), path);
    }

    void bundledExperimentsLoadValid() {
        const QDir dir(QString::fromStdString(test::sourcePath("experiments")));
        const QStringList files = dir.entryList({QStringLiteral("*.json")}, QDir::Files);
        QVERIFY(!files.isEmpty());
        for (const QString& f : files) {
            ExperimentEditor editor;
            QString error;
            QVERIFY(editor.load(dir.filePath(f), &error));
            editor.validateNow();
            QVERIFY2(editor.issues().empty(), qPrintable(f));
            // Loading does not rewrite the document through the form.
            QCOMPARE(editor.document(), textDoc(editor));
            QVERIFY(!editor.isModified());
        }
    }
};

QTEST_MAIN(TestExperimentEditor)
#include "test_experiment_editor.moc"
