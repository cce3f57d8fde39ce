"""avemo.evaluation"""
