// Registers the built-in strategies with their schemas.
#include "engine/strategies/builtin/builtin.h"

namespace lathe {

void registerBuiltinStrategies(StrategyRegistry& registry) {
    registry.add(trainSchema(), [](const ParamValues& p) { return makeTrainingStrategy("train", p); });
    registry.add(finetuneSchema(), [](const ParamValues& p) { return makeTrainingStrategy("finetune", p); });
    registry.add(measureSchema(), [](const ParamValues& p) { return makeMeasureStrategy(p); });
}

} // namespace lathe
