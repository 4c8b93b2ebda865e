from deeper.cli import main

raise SystemExit(main())
