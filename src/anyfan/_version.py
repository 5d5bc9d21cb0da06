"""The installed version of anyfan."""

__version__ = "0.1.0.dev0"
