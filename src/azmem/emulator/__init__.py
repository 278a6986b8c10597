"""azmem.emulator"""
