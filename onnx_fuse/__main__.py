from onnx_fuse.cli import main

raise SystemExit(main())
