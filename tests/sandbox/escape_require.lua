-- expect: global 'require'
return require("os")
