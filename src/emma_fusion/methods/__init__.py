"""Fusion methods behind one interface: the EMMA network, classical baselines, result folders."""

from .base import FusionMethod, MethodInfo, get_method, list_methods, register_method

__all__ = ["FusionMethod", "MethodInfo", "get_method", "list_methods", "register_method"]
