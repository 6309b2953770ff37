"""Streamlit helpers shared by the pages: the model picker, error display, small renderers.

Only this package and ``pages/`` import streamlit; the analyses live in ``interp`` and ``steering``.
"""
