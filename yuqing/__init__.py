"""yuqing (舆情哨兵): the top layer: the command line and the scheduler of `yuqing run`."""
