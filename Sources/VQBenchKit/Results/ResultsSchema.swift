// The JSON Schema (draft 2020-12) of the results document, the same text as
// docs/results-schema.json, embedded so ResultsValidator works from any working directory.

extension ResultsValidator {
    /// docs/results-schema.json, byte for byte (ResultsSchemaTests compares them).
    public static let schemaText = #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "VirtqueueBench results document",
  "description": "One run of vqbench: results/<run-id>.json. Names may be added but never renamed or removed without bumping schema_version.",
  "$comment": "Kept identical to ResultsSchema.text in Sources/VQBenchKit/Results/ResultsSchema.swift (a test compares them). Objects allow additional properties so that later versions may add names. Nullable objects state their type at the use site next to $ref, so the referenced definitions carry no type of their own.",
  "type": "object",
  "required": ["schema_version", "tool", "started_at", "duration_s", "suite", "machine", "calibration", "scenarios"],
  "properties": {
    "schema_version": { "type": "integer", "minimum": 1 },
    "tool": { "type": "object", "$ref": "#/$defs/Tool" },
    "started_at": { "type": "string", "description": "UTC start time, ISO 8601." },
    "duration_s": { "type": "number", "minimum": 0 },
    "suite": { "type": "string" },
    "filter": { "type": ["string", "null"] },
    "machine": { "type": "object", "$ref": "#/$defs/Machine" },
    "calibration": { "type": "object", "$ref": "#/$defs/Calibration" },
    "scenarios": { "type": "array", "items": { "type": "object", "$ref": "#/$defs/Scenario" } },
    "control_path": { "type": ["array", "null"], "items": { "type": "object", "$ref": "#/$defs/ControlPathOperation" } },
    "migrations": {
      "type": ["array", "null"],
      "description": "Live migrations under traffic, one entry per source → destination parent pair and layout.",
      "items": { "type": "object", "$ref": "#/$defs/Migration" }
    },
    "comparisons": {
      "type": ["array", "null"],
      "description": "Paired ratios a ÷ b, a and b measured in the same interleaved rounds and placement class.",
      "items": { "type": "object", "$ref": "#/$defs/Comparison" }
    },
    "repeat": { "type": ["object", "null"], "$ref": "#/$defs/Repeat" },
    "gate": { "type": ["array", "null"], "items": { "type": "object", "$ref": "#/$defs/GateCheck" } },
    "ratio_baselines": {
      "type": ["array", "null"],
      "description": "Only in a gate baseline: gate C's paired ratios per machine key (CPU, CPU count, placement class).",
      "items": { "type": "object", "$ref": "#/$defs/RatioBaseline" }
    }
  },
  "$defs": {
    "Migration": {
      "required": ["from", "to", "layout", "repetitions", "queue_size", "in_flight", "downtime_median_ns", "downtime_max_ns",
                   "steps_ns", "modelled_ns", "carried_over", "packets", "lost", "duplicated", "ok"],
      "properties": {
        "from": { "type": "string" },
        "to": { "type": "string" },
        "layout": { "type": "string", "enum": ["split", "packed"] },
        "repetitions": { "type": "integer", "minimum": 1 },
        "queue_size": { "type": "integer", "minimum": 1 },
        "in_flight": { "type": "integer", "minimum": 0, "description": "Buffers the guest had posted and not got back when it stopped." },
        "downtime_median_ns": { "type": "number", "minimum": 0, "description": "The guest's stop → the destination's first completion back at the guest." },
        "downtime_max_ns": { "type": "number", "minimum": 0 },
        "steps_ns": { "type": "object", "additionalProperties": { "type": "number", "minimum": 0 }, "description": "Median measured time per step." },
        "modelled_ns": { "type": "object", "additionalProperties": { "type": "number", "minimum": 0 }, "description": "Median modelled time per step (firmware, register flights); never inside steps_ns." },
        "carried_over": { "type": "integer", "minimum": 0, "description": "Transmit and receive buffers in flight at the stop that the destination completed." },
        "packets": { "type": "integer", "minimum": 0, "description": "Packets sent and receive buffers posted by the guest; lost and duplicated count both directions." },
        "lost": { "type": "integer", "minimum": 0 },
        "duplicated": { "type": "integer", "minimum": 0 },
        "ok": { "type": "boolean" },
        "errors": { "type": ["array", "null"], "items": { "type": "string" } }
      }
    },
    "ControlPathOperation": {
      "required": ["parent", "operation", "count", "median_ns", "p99_ns", "min_ns", "max_ns"],
      "properties": {
        "parent": { "type": "string" },
        "operation": { "type": "string", "description": "Lifecycle or control operation; 'virtio: ' / 'vhost: ' / 'devlink: ' name the path it was timed on." },
        "count": { "type": "integer", "minimum": 1 },
        "median_ns": { "type": "number", "minimum": 0 },
        "p99_ns": { "type": "number", "minimum": 0 },
        "min_ns": { "type": "number", "minimum": 0 },
        "max_ns": { "type": "number", "minimum": 0 }
      }
    },
    "Tool": {
      "required": ["name", "version", "toolchain", "build_config"],
      "properties": {
        "name": { "type": "string" },
        "version": { "type": "string" },
        "git_commit": { "type": ["string", "null"] },
        "dirty": { "type": ["boolean", "null"] },
        "toolchain": { "type": "string" },
        "build_config": { "type": "string" }
      }
    },
    "Machine": {
      "required": ["cpu_model", "logical_cpus", "kernel", "virtualization", "tsc_hz", "hugepages", "io_uring"],
      "properties": {
        "cpu_vendor": { "type": ["string", "null"], "description": "/proc/cpuinfo vendor_id" },
        "cpu_model": { "type": "string" },
        "logical_cpus": { "type": "integer", "minimum": 1 },
        "kernel": { "type": "string" },
        "virtualization": { "type": "string", "description": "kvm, firecracker, none, ..." },
        "tsc_hz": { "type": "number", "minimum": 0 },
        "hugepages": {
          "type": "object",
          "required": ["2M_total", "2M_free", "1G_total", "thp"],
          "properties": {
            "2M_total": { "type": "integer", "minimum": 0 },
            "2M_free": { "type": "integer", "minimum": 0 },
            "1G_total": { "type": "integer", "minimum": 0 },
            "thp": { "type": "string" }
          }
        },
        "io_uring": {
          "type": "object",
          "required": ["available", "ops"],
          "properties": {
            "available": { "type": "boolean" },
            "ops": { "type": "array", "items": { "type": "string" } },
            "reason": { "type": ["string", "null"] }
          }
        },
        "valgrind": { "type": ["string", "null"] }
      }
    },
    "Calibration": {
      "required": ["cacheline_rtt_ns", "bare_ring_entries_per_s", "wake_ns"],
      "properties": {
        "cacheline_rtt_ns": { "type": "object", "$ref": "#/$defs/Percentiles" },
        "bare_ring_entries_per_s": { "type": "object", "$ref": "#/$defs/Interval" },
        "wake_ns": {
          "type": "object",
          "description": "Per doorbell transport.",
          "additionalProperties": { "type": "object", "$ref": "#/$defs/Percentiles" }
        },
        "placements": {
          "type": ["object", "null"],
          "description": "Rounds kept in each vCPU placement class during the run.",
          "additionalProperties": { "type": "integer", "minimum": 0 }
        },
        "placement_classes": {
          "type": ["array", "null"],
          "description": "Clusters of the run's own cache-line round trips, fastest first.",
          "items": { "type": "object", "$ref": "#/$defs/PlacementClass" }
        }
      }
    },
    "PlacementClass": {
      "required": ["name", "rtt_ns", "min_ns", "max_ns", "samples"],
      "properties": {
        "name": { "type": "string", "description": "rtt-<median rounded to 10 ns>ns" },
        "rtt_ns": { "type": "number", "minimum": 0 },
        "min_ns": { "type": "number", "minimum": 0 },
        "max_ns": { "type": "number", "minimum": 0 },
        "samples": { "type": "integer", "minimum": 1 }
      }
    },
    "Comparison": {
      "required": ["a", "b", "kind", "ratio", "rounds", "placement"],
      "properties": {
        "a": { "type": "string" },
        "b": { "type": "string" },
        "kind": { "type": "string", "enum": ["layout", "doorbell", "mediator", "binding", "revision", "feature"] },
        "ratio": { "type": "number", "minimum": 0 },
        "ci95": { "type": ["array", "null"], "items": { "type": "number" }, "minItems": 2, "maxItems": 2 },
        "rounds": { "type": "integer", "minimum": 1 },
        "placement": { "type": "string" },
        "placement_rtt_ns": { "type": ["number", "null"], "minimum": 0 },
        "note": { "type": ["string", "null"] }
      }
    },
    "Repeat": {
      "required": ["runs", "run_ids", "spread"],
      "properties": {
        "runs": { "type": "integer", "minimum": 1 },
        "run_ids": { "type": "array", "items": { "type": "string" } },
        "spread": {
          "type": "array",
          "items": {
            "type": "object",
            "required": ["comparison", "kind", "runs", "median", "iqr_over_median", "min", "max", "placements"],
            "properties": {
              "comparison": { "type": "string" },
              "kind": { "type": "string", "enum": ["layout", "doorbell", "mediator", "binding", "revision", "feature"] },
              "runs": { "type": "integer", "minimum": 1 },
              "median": { "type": "number" },
              "iqr_over_median": { "type": "number", "minimum": 0 },
              "min": { "type": "number" },
              "max": { "type": "number" },
              "placements": { "type": "array", "items": { "type": "string" } }
            }
          }
        }
      }
    },
    "RatioBaseline": {
      "required": ["machine", "recorded_at", "comparisons"],
      "properties": {
        "machine": {
          "type": "object",
          "required": ["cpu_vendor", "cpu_model", "logical_cpus", "placement", "placement_rtt_ns"],
          "properties": {
            "cpu_vendor": { "type": "string" },
            "cpu_vendor": { "type": ["string", "null"], "description": "/proc/cpuinfo vendor_id" },
        "cpu_model": { "type": "string" },
            "logical_cpus": { "type": "integer", "minimum": 1 },
            "placement": { "type": "string" },
            "placement_rtt_ns": { "type": "number", "minimum": 0 }
          }
        },
        "recorded_at": { "type": "string" },
        "git_commit": { "type": ["string", "null"] },
        "comparisons": { "type": "array", "items": { "type": "object", "$ref": "#/$defs/Comparison" } }
      }
    },
    "Percentiles": {
      "required": ["p50", "p99"],
      "properties": {
        "p50": { "type": "number", "minimum": 0 },
        "p99": { "type": "number", "minimum": 0 }
      }
    },
    "Interval": {
      "description": "A median with its bootstrap 95 % interval (absent when there was one sample).",
      "required": ["median"],
      "properties": {
        "median": { "type": "number", "minimum": 0 },
        "ci95": { "type": ["array", "null"], "minItems": 2, "maxItems": 2, "items": { "type": "number", "minimum": 0 } }
      }
    },
    "Scenario": {
      "required": ["id", "params", "status", "modelled", "repetitions", "duration_ns"],
      "properties": {
        "id": { "type": "string" },
        "params": { "type": "object", "$ref": "#/$defs/Params" },
        "status": { "type": "string", "enum": ["ok", "skipped", "unavailable", "failed"] },
        "reason": { "type": ["string", "null"], "description": "Why, when status is not ok." },
        "modelled": { "type": "array", "items": { "type": "object", "$ref": "#/$defs/ModelledParameter" } },
        "repetitions": { "type": "integer", "minimum": 0 },
        "duration_ns": { "type": "integer", "minimum": 0 },
        "placement": { "type": ["string", "null"] },
        "throughput": { "type": ["object", "null"], "$ref": "#/$defs/Throughput" },
        "latency_ns": { "type": ["object", "null"], "$ref": "#/$defs/Latency" },
        "counters": { "type": ["object", "null"], "$ref": "#/$defs/Counters" },
        "cpu_ns_per_desc": { "type": ["number", "null"], "minimum": 0 },
        "ratio_to_calibration": { "type": ["number", "null"], "minimum": 0 },
        "ratio_to_calibration_ci95": { "type": ["array", "null"], "items": { "type": "number" }, "minItems": 2, "maxItems": 2 },
        "ratio_to_bare": { "type": ["number", "null"], "minimum": 0 },
        "ratio_to_bare_ci95": { "type": ["array", "null"], "items": { "type": "number" }, "minItems": 2, "maxItems": 2 },
        "control_path_ns": { "type": ["object", "null"], "additionalProperties": { "type": "number", "minimum": 0 } },
        "instructions_per_desc": { "type": ["number", "null"], "minimum": 0 },
        "generic_datapath_functions": { "type": ["array", "null"], "items": { "type": "string" } },
        "cpu_ns_per_desc_by_thread": {
          "type": ["object", "null"],
          "required": ["driver", "device"],
          "properties": {
            "driver": { "type": "number", "minimum": 0 },
            "device": { "type": "number", "minimum": 0 },
            "relay": { "type": ["number", "null"], "minimum": 0 }
          }
        },
        "shadow_relay": {
          "type": ["object", "null"],
          "required": ["translations_per_desc", "device_kicks_per_1k", "driver_interrupts_per_1k", "idle_passes_per_1k", "syscalls_per_1k"],
          "properties": {
            "translations_per_desc": { "type": "number", "minimum": 0 },
            "device_kicks_per_1k": { "type": "number", "minimum": 0 },
            "driver_interrupts_per_1k": { "type": "number", "minimum": 0 },
            "idle_passes_per_1k": { "type": "number", "minimum": 0 },
            "syscalls_per_1k": { "type": "number", "minimum": 0 }
          }
        }
      }
    },
    "Params": {
      "required": ["layout", "doorbell", "mediator", "binding", "queue_size", "batch", "payload_bytes", "memory", "queue_pairs"],
      "properties": {
        "layout": { "type": "string" },
        "doorbell": { "type": "string" },
        "mediator": { "type": "string" },
        "binding": { "type": "string" },
        "queue_size": { "type": "integer", "minimum": 1 },
        "batch": { "type": "integer", "minimum": 1 },
        "payload_bytes": { "type": "integer", "minimum": 0 },
        "memory": { "type": "string" },
        "queue_pairs": { "type": "integer", "minimum": 1 }
      }
    },
    "ModelledParameter": {
      "required": ["parameter", "value", "source"],
      "properties": {
        "parameter": { "type": "string" },
        "value": { "type": "number" },
        "source": { "type": "string" }
      }
    },
    "Throughput": {
      "required": ["desc_per_s", "packets_per_s", "gbit_per_s"],
      "properties": {
        "desc_per_s": { "type": "object", "$ref": "#/$defs/Interval" },
        "packets_per_s": { "type": "object", "$ref": "#/$defs/Interval" },
        "gbit_per_s": { "type": "object", "$ref": "#/$defs/Interval" }
      }
    },
    "Latency": {
      "required": ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"],
      "properties": {
        "count": { "type": "integer", "minimum": 0 },
        "min": { "type": "number", "minimum": 0 },
        "mean": { "type": "number", "minimum": 0 },
        "p50": { "type": "number", "minimum": 0 },
        "p90": { "type": "number", "minimum": 0 },
        "p99": { "type": "number", "minimum": 0 },
        "p999": { "type": "number", "minimum": 0 },
        "max": { "type": "number", "minimum": 0 }
      }
    },
    "Counters": {
      "required": ["kicks_per_1k", "interrupts_per_1k", "syscalls_per_1k"],
      "properties": {
        "kicks_per_1k": { "type": "number", "minimum": 0 },
        "interrupts_per_1k": { "type": "number", "minimum": 0 },
        "desc_per_kick": { "type": ["number", "null"], "minimum": 0 },
        "syscalls_per_1k": { "type": "number", "minimum": 0 },
        "mallocs_in_loop": { "type": ["integer", "null"], "minimum": 0 },
        "retains_per_1k": { "type": ["number", "null"], "minimum": 0 }
      }
    },
    "GateCheck": {
      "required": ["check", "metric", "tolerance", "verdict"],
      "properties": {
        "check": { "type": "string" },
        "metric": { "type": "string" },
        "baseline": { "type": ["number", "null"] },
        "observed": { "type": ["number", "null"] },
        "tolerance": { "type": "string" },
        "verdict": { "type": "string", "enum": ["pass", "regression", "improvement", "inconclusive", "no-baseline", "no-baseline-for-machine"] }
      }
    }
  }
}

"""#
}
