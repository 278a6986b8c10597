"""azmem.memory"""
