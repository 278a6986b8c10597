"""azmem.server"""
