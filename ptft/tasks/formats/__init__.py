"""The three prompt formats (default / instruct / io) in two modes (faithful / fixed)."""

from ptft.tasks.formats.render import join_space, render_row, sft_segments, token_boundary
from ptft.tasks.formats.templates import TEMPLATES, template_version

__all__ = ["TEMPLATES", "join_space", "render_row", "sft_segments", "template_version", "token_boundary"]
