from tap_commerce_exports.cli import main

main()
