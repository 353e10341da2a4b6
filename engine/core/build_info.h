// Facts about this build that runs record: the git revision, from a source file generated at build time
// (cmake/git_revision.cmake), so a new commit recompiles one file instead of the whole engine.
#pragma once

namespace lathe {

// `git rev-parse --short HEAD` of the source tree at build time, or "unknown" outside a git checkout.
const char* gitRevision();

} // namespace lathe
