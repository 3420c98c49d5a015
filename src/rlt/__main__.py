from rlt.cli import main

raise SystemExit(main())
