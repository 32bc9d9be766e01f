"""yuqing"""
