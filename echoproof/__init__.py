"""echoproof's own namespace beside the design's `pipeline`, `dsp` and `verify`: the embedded
server (`echoproof.sfu`), the evidence contract both stages import (`echoproof.contract`) and
the task helpers (`echoproof.aiotasks`). Nothing else of echoproof is installed at the top of
site-packages, so no name of ours clashes with another distribution's."""
