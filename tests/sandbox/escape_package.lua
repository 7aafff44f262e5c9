-- expect: global 'package'
return package.loaded.os
