"""azmem.stores"""
