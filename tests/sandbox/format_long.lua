-- expect: format longer
return string.format(string.rep("%d", 40000), 1)
