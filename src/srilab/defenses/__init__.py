"""srilab.defenses"""
