"""srilab.report"""
