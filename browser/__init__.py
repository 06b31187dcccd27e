"""Evaluate mParticle audience segments in the visitor's browser.

The core modules, :mod:`browser.segments` (the segment model) and
:mod:`browser.evaluation` (decisions with reasons), import only the standard
library, so the same code runs in Pyodide and under CPython for the admin
console preview and the tests. Only :mod:`browser.page` talks to ``js``.
"""
