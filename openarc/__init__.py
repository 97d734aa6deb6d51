"""OpenArc: an OpenAI-compatible serving daemon on OpenVINO GenAI."""

__version__ = "0.1.0"
