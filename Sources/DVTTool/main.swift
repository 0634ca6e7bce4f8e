// The `dvt` executable: everything lives in DVTCommands.
import DVTCommands

DVTCommand.main()
