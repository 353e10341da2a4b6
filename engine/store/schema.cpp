// The run store's schema history: the original DDL (version 1) and every forward migration, kept
// verbatim so a database written by any older Lathe can be brought up to date (and tests can build one).
#include "engine/store/run_store.h"

#include "engine/core/errors.h"

#include <array>

namespace lathe {
namespace {

// Version 1: the original schema. Never edit: write a migration instead.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE schema_version (
  version    INTEGER NOT NULL PRIMARY KEY,
  applied_at REAL NOT NULL
);
CREATE TABLE experiments (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT NOT NULL,
  spec_json  TEXT NOT NULL DEFAULT '{}',
  created_at REAL NOT NULL
);
CREATE TABLE runs (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  experiment_id    INTEGER REFERENCES experiments(id) ON DELETE SET NULL,
  name             TEXT NOT NULL DEFAULT '',
  status           TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued','running','done','failed','cancelled','interrupted')),
  model            TEXT NOT NULL DEFAULT '',
  dataset          TEXT NOT NULL DEFAULT '',
  device           TEXT NOT NULL DEFAULT '',
  strategy_chain   TEXT NOT NULL DEFAULT '',
  tags             TEXT NOT NULL DEFAULT '[]',
  created_at       REAL NOT NULL,
  started_at       REAL,
  finished_at      REAL,
  config_json      TEXT NOT NULL DEFAULT '{}',
  environment_json TEXT NOT NULL DEFAULT '{}',
  error            TEXT NOT NULL DEFAULT '',
  parent_run_id    INTEGER REFERENCES runs(id) ON DELETE SET NULL
);
CREATE INDEX idx_runs_experiment ON runs(experiment_id);
CREATE INDEX idx_runs_created ON runs(created_at);
CREATE INDEX idx_runs_parent ON runs(parent_run_id);
CREATE TABLE summaries (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  REAL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE samples (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  series TEXT NOT NULL,
  step   INTEGER NOT NULL,
  t_ms   REAL NOT NULL,
  value  REAL
);
CREATE INDEX idx_samples_run ON samples(run_id);
CREATE TABLE layer_stats (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  layer  TEXT NOT NULL,
  key    TEXT NOT NULL,
  value  REAL,
  PRIMARY KEY (run_id, layer, key)
) WITHOUT ROWID;
CREATE TABLE artifacts (
  id     INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind   TEXT NOT NULL,
  path   TEXT NOT NULL,
  sha256 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_artifacts_run ON artifacts(run_id);
INSERT INTO schema_version(version, applied_at) VALUES (1, (julianday('now') - 2440587.5) * 86400.0);
)sql";

// Version 2: runs remember which process owns them (host + pid), so a run left `running` by a
// crashed process can be told apart from one another live process is still writing.
constexpr const char* kMigrationV2 = R"sql(
ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE runs ADD COLUMN owner_host TEXT;
CREATE INDEX idx_runs_status ON runs(status);
INSERT INTO schema_version(version, applied_at) VALUES (2, (julianday('now') - 2440587.5) * 86400.0);
)sql";

// Version 3: runs are sorted and filtered by a metric (best accuracy, Pareto fronts over latency):
// index summaries by key and value so that does not scan every run's summary.
constexpr const char* kMigrationV3 = R"sql(
CREATE INDEX idx_summaries_key_value ON summaries(key, value);
INSERT INTO schema_version(version, applied_at) VALUES (3, (julianday('now') - 2440587.5) * 86400.0);
)sql";

// Version 4: runs carry notes — short texts a strategy leaves about how its figures were obtained (e.g.
// "simulated": which figure comes from a model of the hardware instead of execution).
constexpr const char* kMigrationV4 = R"sql(
CREATE TABLE run_notes (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
INSERT INTO schema_version(version, applied_at) VALUES (4, (julianday('now') - 2440587.5) * 86400.0);
)sql";

// Version 5: the measured peaks of each device (`lathe-cli bench peaks`: f32 GEMM FLOP/s, copy bandwidth),
// keyed by the device name runs record in their environment, so every run can be placed on its roofline.
constexpr const char* kMigrationV5 = R"sql(
CREATE TABLE device_peaks (
  device      TEXT NOT NULL,
  backend     TEXT NOT NULL,
  key         TEXT NOT NULL,
  value       REAL NOT NULL,
  measured_at REAL NOT NULL,
  detail_json TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (device, key)
) WITHOUT ROWID;
INSERT INTO schema_version(version, applied_at) VALUES (5, (julianday('now') - 2440587.5) * 86400.0);
)sql";

// Version 6: sweeps run on a cluster, one database shard per task, merged later. Runs and experiments get
// a stable identifier (a random UUID, kept by every copy) so a merge recognises what it already holds,
// and the sweeps submitted to Slurm are remembered for `lathe-cli jobs` and the window. Rows written
// before get a random UUID here; new ones get theirs from RunStore::createRun / addExperiment.
constexpr const char* kMigrationV6 = R"sql(
ALTER TABLE runs ADD COLUMN uuid TEXT;
ALTER TABLE experiments ADD COLUMN uuid TEXT;
UPDATE runs SET uuid = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) ||
  '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)));
UPDATE experiments SET uuid = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
  substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) ||
  '-' || hex(randomblob(6)));
CREATE UNIQUE INDEX idx_runs_uuid ON runs(uuid);
CREATE UNIQUE INDEX idx_experiments_uuid ON experiments(uuid);
CREATE TABLE submissions (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid           TEXT NOT NULL UNIQUE,
  name           TEXT NOT NULL DEFAULT '',
  spec_file      TEXT NOT NULL DEFAULT '',
  workdir        TEXT NOT NULL,
  tasks          INTEGER NOT NULL,
  array_job_id   TEXT NOT NULL,
  merge_job_id   TEXT NOT NULL DEFAULT '',
  scheduler      TEXT NOT NULL DEFAULT 'slurm',
  submitted_at   REAL NOT NULL
);
INSERT INTO schema_version(version, applied_at) VALUES (6, (julianday('now') - 2440587.5) * 86400.0);
)sql";

constexpr std::array<const char*, 6> kScripts = {kSchemaV1, kMigrationV2, kMigrationV3, kMigrationV4, kMigrationV5,
                                                 kMigrationV6};

} // namespace

int RunStore::currentSchemaVersion() { return static_cast<int>(kScripts.size()); }

std::string RunStore::schemaScript(int version) {
    if (version < 1 || version > currentSchemaVersion())
        throw StoreError("run store: no schema script for version " + std::to_string(version) + " (known: 1.." +
                         std::to_string(currentSchemaVersion()) + ")");
    return kScripts[static_cast<std::size_t>(version - 1)];
}

} // namespace lathe
