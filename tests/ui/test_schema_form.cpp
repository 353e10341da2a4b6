// SchemaForm: every registered strategy gets a form whose widgets show and return its defaults; a
// schema with every ParamType round-trips given values, ranges and tooltips come from the schema.
#include "engine/strategies/strategy.h"
#include "ui/editor/schema_form.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLineEdit>
#include <QSignalSpy>
#include <QSpinBox>
#include <QtTest>

using namespace lathe;
using namespace lathe::ui;

namespace {
ParamField field(const char* name, ParamType type, const char* def, double min = -1e300, double max = 1e300) {
    ParamField f;
    f.name = name;
    f.type = type;
    f.defaultJson = def;
    f.min = min;
    f.max = max;
    f.help = std::string("help for ") + name;
    return f;
}

StrategySchema everyType() {
    StrategySchema s{"test.every_type", "test", "a schema with one field of each type", {}};
    s.fields.push_back(field("ratio", ParamType::Number, "0.25", 0, 1));
    s.fields.push_back(field("tiny", ParamType::Number, "1e-08", 0, 1));
    s.fields.push_back(field("count", ParamType::Integer, "7", 1, 100));
    s.fields.push_back(field("flag", ParamType::Boolean, "true"));
    s.fields.push_back(field("label", ParamType::String, "\"hello\""));
    ParamField choice = field("mode", ParamType::Choice, "\"b\"");
    choice.choices = {"a", "b", "c"};
    s.fields.push_back(choice);
    s.fields.push_back(field("sizes", ParamType::IntegerList, "[1, 64, 256]", 1, 65536));
    s.fields.back().unit = "samples";
    return s;
}
} // namespace

class TestSchemaForm : public QObject {
    Q_OBJECT
private slots:
    void everyRegisteredStrategyRoundTripsDefaults_data() {
        QTest::addColumn<QString>("strategy");
        const auto all = StrategyRegistry::instance().all();
        QVERIFY(!all.empty());
        for (const StrategySchema* s : all) {
            QTest::newRow(s->name.c_str()) << QString::fromStdString(s->name);
        }
    }
    void everyRegisteredStrategyRoundTripsDefaults() {
        QFETCH(QString, strategy);
        const StrategySchema* schema = StrategyRegistry::instance().find(strategy.toStdString());
        QVERIFY(schema);
        SchemaForm form(*schema);
        const nlohmann::json defaults = SchemaForm::defaults(*schema);
        // Nothing given: the widgets show the defaults, and reading them back gives the defaults.
        form.setValues(nlohmann::json::object());
        // (JSON equality: 0 and 0.0 are the same number)
        QVERIFY2(form.values() == defaults, (form.values().dump() + " != " + defaults.dump()).c_str());
        QVERIFY(form.explicitValues().empty());
        // Defaults given explicitly: same values, all explicit.
        form.setValues(defaults);
        QVERIFY2(form.values() == defaults, form.values().dump().c_str());
        QCOMPARE(form.explicitValues().size(), defaults.size());
        for (const ParamField& f : schema->fields) {
            QWidget* w = form.fieldWidget(f.name);
            QVERIFY2(w, f.name.c_str());
            if (!f.help.empty()) {
                QVERIFY(w->toolTip().contains(QString::fromStdString(f.help)));
            }
        }
    }

    void widgetsFollowTheParamType() {
        SchemaForm form(everyType());
        QVERIFY(qobject_cast<QDoubleSpinBox*>(form.fieldWidget("ratio")));
        QVERIFY(qobject_cast<QSpinBox*>(form.fieldWidget("count")));
        QVERIFY(qobject_cast<QCheckBox*>(form.fieldWidget("flag")));
        QVERIFY(qobject_cast<QLineEdit*>(form.fieldWidget("label")));
        QVERIFY(qobject_cast<QComboBox*>(form.fieldWidget("mode")));
        QVERIFY(qobject_cast<QLineEdit*>(form.fieldWidget("sizes")));
        auto* ratio = qobject_cast<QDoubleSpinBox*>(form.fieldWidget("ratio"));
        QCOMPARE(ratio->minimum(), 0.0);
        QCOMPARE(ratio->maximum(), 1.0);
        auto* count = qobject_cast<QSpinBox*>(form.fieldWidget("count"));
        QCOMPARE(count->minimum(), 1);
        QCOMPARE(count->maximum(), 100);
        QCOMPARE(qobject_cast<QComboBox*>(form.fieldWidget("mode"))->count(), 3);
        QVERIFY(form.fieldWidget("ratio")->toolTip().contains(QStringLiteral("help for ratio")));
        QVERIFY(form.fieldWidget("ratio")->toolTip().contains(QStringLiteral("[0, 1]")));
        QVERIFY(form.fieldWidget("mode")->toolTip().contains(QStringLiteral("a, b, c")));
        // A tiny default is neither rounded to 0 nor padded with zeros.
        QCOMPARE(form.values()["tiny"].get<double>(), 1e-8);
    }

    void givenValuesRoundTrip() {
        SchemaForm form(everyType());
        const nlohmann::json given = {{"ratio", 0.625}, {"tiny", 3e-7},    {"count", 42},       {"flag", false},
                                      {"label", "x y"}, {"mode", "c"},     {"sizes", {2, 8, 32}}};
        form.setValues(given);
        QVERIFY2(form.values() == given, form.values().dump().c_str());
        QCOMPARE(qobject_cast<QComboBox*>(form.fieldWidget("mode"))->currentText(), QStringLiteral("c"));
        QCOMPARE(qobject_cast<QLineEdit*>(form.fieldWidget("sizes"))->text(), QStringLiteral("2, 8, 32"));
    }

    void editingEmitsTheNewValue() {
        SchemaForm form(everyType());
        form.setValues({{"count", 3}});
        QSignalSpy spy(&form, &SchemaForm::fieldEdited);
        qobject_cast<QSpinBox*>(form.fieldWidget("count"))->setValue(9);
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.at(0).at(0).toString(), QStringLiteral("count"));
        QCOMPARE(spy.at(0).at(1).toString(), QStringLiteral("9"));
        qobject_cast<QComboBox*>(form.fieldWidget("mode"))->setCurrentText(QStringLiteral("a"));
        QCOMPARE(spy.count(), 2);
        QCOMPARE(form.explicitValues(), (nlohmann::json{{"count", 9}, {"mode", "a"}}));
    }

    void wrongTypesStayUntouchedUntilEdited() {
        // A hand-written file with "ratio": "high": the form cannot show it but must not rewrite it.
        SchemaForm form(everyType());
        form.setValues({{"ratio", "high"}});
        QCOMPARE(form.values()["ratio"], nlohmann::json("high"));
    }

    void fieldErrorsAreShownAndCleared() {
        SchemaForm form(everyType());
        form.setFieldError("count", QStringLiteral("expected an integer in [1, 100], got 0"));
        QVERIFY(form.fieldWidget("count")->property("lathe_error").toBool());
        QVERIFY(form.fieldWidget("count")->toolTip().startsWith(QStringLiteral("expected an integer")));
        form.clearErrors();
        QVERIFY(!form.fieldWidget("count")->property("lathe_error").toBool());
        QVERIFY(form.fieldWidget("count")->toolTip().contains(QStringLiteral("help for count")));
    }
};

QTEST_MAIN(TestSchemaForm)
#include "test_schema_form.moc"
