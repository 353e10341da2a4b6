// Fixture: an engine/core header that includes a higher folder; check_layers.cmake must reject it.
#include "engine/nn/model.h"
