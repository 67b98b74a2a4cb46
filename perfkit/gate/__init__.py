"""`perfkit gate`: decide whether a change made benchmarks slower or hungrier.

config   [tool.perfkit.gate] in pyproject.toml -> GateConfig
metrics  the metrics, their noise tier, unit and default minimum effect
stats    paired / unpaired ratio confidence intervals and the per-metric decision
plan     repetition plan, interleaved measurement and adaptive repetition
baseline the committed baseline file and environment metadata
explain  which functions grew in a CPU regression
report   terminal / markdown / JUnit XML / GitHub annotations / JSON
"""
