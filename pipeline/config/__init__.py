"""The configuration, every block of it in one place: the run (`run`: config.json and the LIVEKIT_*
overrides), the agent under test (`agent`), the speech-like probe (`probe`), the network
impairment (`impairment`) and the faults tests inject (`faults`). Both kinds of conversation read
it; it imports neither."""

from pipeline.config.run import DEFAULTS, MODES, Config, from_dict, load_config, parse_config

__all__ = ["DEFAULTS", "MODES", "Config", "from_dict", "load_config", "parse_config"]
