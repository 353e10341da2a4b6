#!/usr/bin/env python3
"""The figures of docs/benchmarks/search.md: mlp-search-latency.json (or cnn-search-latency.json) with TPE and with random search over
seeds, TPE both multivariate (the default) and per field (each search in its own database, so nothing is looked up or warm-started across them), the bundled
single strategies (mlp-search-singles.json, cnn-search-singles.json) as the reference, then the winners and the best single strategy
timed again together in one process with more repeats (an interleaved re-measurement, so a busy moment of
the machine does not decide the comparison).

usage: tests/tools/search_benchmark.py OUTDIR [--model mlp|cnn] [--cli build/default/app/lathe-cli] [--seeds 1,2,3]
                                     [--algorithms tpe,tpe-independent,random]
"""
import argparse, json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBJ, CON, BOUND = None, None, None  # the search file's first objective and constraint


def run(cli, exp, db, extra=()):
    t0 = time.time()
    p = subprocess.run([cli, "run", exp, "--db", db, "--json", *extra], capture_output=True, text=True)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return lines, time.time() - t0, p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build/default/app/lathe-cli"))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--algorithms", default="tpe,tpe-independent,random")
    ap.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    global OBJ, CON, BOUND
    base = json.load(open(os.path.join(ROOT, f"experiments/{a.model}-search-latency.json")))
    OBJ = base["search"]["objectives"][0]["minimize"]
    CON, BOUND = base["search"]["constraints"][0]["metric"], base["search"]["constraints"][0][">="]
    results = {"model": a.model, "objective": OBJ, "constraint": [CON, ">=", BOUND], "singles": None, "searches": []}

    singles_file = os.path.join(ROOT, f"experiments/{a.model}-search-singles.json")
    singles, secs, _ = run(a.cli, singles_file, os.path.join(a.out, "singles.sqlite"))
    sweep = json.load(open(singles_file))["sweep"]["steps"]
    rows = []
    for chain, o in zip(sweep, singles):
        s = o.get("summary", {})
        rows.append({"steps": chain, "status": o["status"], OBJ: s.get(OBJ), CON: s.get(CON)})
    results["singles"] = {"rows": rows, "seconds": secs}
    feas = [r for r in rows if r["status"] == "done" and r[CON] is not None and r[CON] >= BOUND]
    best_single = min(feas, key=lambda r: r[OBJ])
    print("best single strategy:", json.dumps(best_single["steps"]), best_single[OBJ], best_single[CON], flush=True)

    for alg in a.algorithms.split(","):
        for seed in [int(s) for s in a.seeds.split(",")]:
            doc = json.loads(json.dumps(base))
            # "tpe-independent": TPE with one estimator per field (the search's "multivariate": false).
            doc["search"]["algorithm"] = "tpe" if alg == "tpe-independent" else alg
            if alg == "tpe-independent":
                doc["search"]["multivariate"] = False
            doc["search"]["seed"] = seed
            exp = os.path.join(a.out, f"{alg}-{seed}.json")
            json.dump(doc, open(exp, "w"), indent=2)
            lines, secs, rc = run(a.cli, exp, os.path.join(a.out, f"{alg}-{seed}.sqlite"),
                                  ["--out", os.path.join(a.out, f"{alg}-{seed}.best.json")])
            trials = [l for l in lines if "trial" in l and "origin" in l]
            final = [l for l in lines if "search_run_id" in l][-1]
            best, first_beat = None, None
            for t in trials:
                s = t["summary"]
                if t["status"] == "done" and s.get(CON, -1) >= BOUND:
                    if best is None or s[OBJ] < best[OBJ]:
                        best = {"trial": t["trial"], "steps": t["steps"], OBJ: s[OBJ], CON: s[CON]}
                    if first_beat is None and s[OBJ] <= best_single[OBJ]:
                        first_beat = t["trial"]
            rec = {"algorithm": alg, "seed": seed, "seconds": secs, "rc": rc, "trials": len(trials),
                   "feasible": sum(1 for t in trials if t["feasible"]), "best": best, "first_beat_single": first_beat,
                   "importance": final.get("importance", [])[:4]}
            results["searches"].append(rec)
            print(json.dumps(rec), flush=True)

    # Re-measure the winners beside the best single strategy in one process, 200 repeats each.
    chains = [best_single["steps"]] + [r["best"]["steps"] for r in results["searches"] if r["best"]]
    re = dict(base)
    re.pop("search")
    re["name"] = "search-winners-remeasured"
    re["measure"] = dict(base["measure"], repeats=200, warmup=20)
    re["steps"] = chains[0]
    re["sweep"] = {"steps": chains}
    exp = os.path.join(a.out, "remeasure.json")
    json.dump(re, open(exp, "w"), indent=2)
    lines, secs, rc = run(a.cli, exp, os.path.join(a.out, "remeasure.sqlite"))
    results["remeasured"] = [{"steps": c, OBJ: l.get("summary", {}).get(OBJ), CON: l.get("summary", {}).get(CON),
                              "status": l["status"]} for c, l in zip(chains, lines)]
    for r in results["remeasured"]:
        print("remeasured", r[OBJ], r[CON], json.dumps(r["steps"]), flush=True)
    json.dump(results, open(os.path.join(a.out, "results.json"), "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
