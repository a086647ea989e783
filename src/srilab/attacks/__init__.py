"""srilab.attacks"""
