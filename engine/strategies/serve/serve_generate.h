// serve.generate's registration, called by the serve family (serve.cpp) so that the family stays one folder.
#pragma once

namespace lathe {
class StrategyRegistry;
namespace serve {
void registerServeGenerate(StrategyRegistry& registry);
}
} // namespace lathe
