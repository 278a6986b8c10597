"""azmem.azure"""
