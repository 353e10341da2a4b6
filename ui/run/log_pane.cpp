// LogPane: timestamped, coloured engine log.
#include "ui/run/log_pane.h"

#include <QFontDatabase>
#include <QScrollBar>
#include <QTextCharFormat>
#include <QTime>

namespace lathe::ui {

LogPane::LogPane(QWidget* parent) : QPlainTextEdit(parent) {
    setObjectName(QStringLiteral("logPane"));
    setReadOnly(true);
    setMaximumBlockCount(10000);
    setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    setLineWrapMode(QPlainTextEdit::NoWrap);
}

void LogPane::appendMessage(int level, const QString& text) {
    QTextCharFormat format;
    QString prefix;
    if (level == 1) {
        format.setForeground(QColor(200, 120, 0));
        prefix = tr("warning: ");
        ++m_warnings;
    } else if (level >= 2) {
        format.setForeground(QColor(213, 60, 0));
        format.setFontWeight(QFont::Bold);
        prefix = tr("error: ");
        ++m_errors;
    }
    const bool atBottom = verticalScrollBar()->value() == verticalScrollBar()->maximum();
    QTextCursor cursor(document());
    cursor.movePosition(QTextCursor::End);
    if (!document()->isEmpty()) {
        cursor.insertBlock();
    }
    QTextCharFormat timeFormat;
    timeFormat.setForeground(palette().color(QPalette::PlaceholderText));
    cursor.insertText(QTime::currentTime().toString(QStringLiteral("HH:mm:ss  ")), timeFormat);
    cursor.insertText(prefix + text, format);
    if (atBottom) {
        verticalScrollBar()->setValue(verticalScrollBar()->maximum());
    }
}

} // namespace lathe::ui
