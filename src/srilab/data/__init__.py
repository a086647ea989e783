"""srilab.data"""
