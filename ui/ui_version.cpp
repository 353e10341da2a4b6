// Placeholder translation unit so lathe_ui always has a source; widgets live beside it.
namespace lathe::ui {
const char* uiVersion() { return LATHE_VERSION; }
} // namespace lathe::ui
