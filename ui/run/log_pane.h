// LogPane: the engine's messages, newest at the bottom; warnings and errors in colour.
#pragma once

#include <QPlainTextEdit>

namespace lathe::ui {

class LogPane : public QPlainTextEdit {
    Q_OBJECT
public:
    explicit LogPane(QWidget* parent = nullptr);
    // level: lathe::LogLevel (0 info, 1 warning, 2 error)
    void appendMessage(int level, const QString& text);
    int warningCount() const { return m_warnings; }
    int errorCount() const { return m_errors; }

private:
    int m_warnings = 0, m_errors = 0;
};

} // namespace lathe::ui
