// The `finetune.*` keys (docs/finetune.md), typed as the other sections in Settings.swift.

extension DVTSettings {
    public struct Finetune: Sendable, Equatable {
        /// `finetune.teacher`
        public var teacher: String?
        /// `finetune.denoiser`
        public var denoiser: String?
        /// `finetune.thaw`
        public var thaw: String?
        /// `finetune.loss`
        public var loss: String?
        /// `finetune.epochs`
        public var epochs: Int?
        /// `finetune.num_iters`
        public var numIters: Int?
        /// `finetune.batch_size`
        public var batchSize: Int?
        /// `finetune.base_lr`
        public var baseLR: Double
        /// `finetune.lr`
        public var lr: Double?
        /// `finetune.min_lr`
        public var minLR: Double
        /// `finetune.warmup_ratio`
        public var warmupRatio: Double
        /// `finetune.schedule`
        public var schedule: String?
        /// `finetune.lr_steps`
        public var lrSteps: [Int]
        /// `finetune.lr_decay`
        public var lrDecay: Double
        /// `finetune.weight_decay`
        public var weightDecay: Double?
        /// `finetune.l2_penalty`
        public var l2Penalty: Double?
        /// `finetune.flip`
        public var flip: Bool
        /// `finetune.gradient_checkpointing`
        public var gradientCheckpointing: Bool
        /// `finetune.cache_teacher`
        public var cacheTeacher: String?
        /// `finetune.export`
        public var export: String?
        /// `finetune.save_freq`
        public var saveFreq: Int
        /// `finetune.print_freq`
        public var printFreq: Int

        public init(_ c: ResolvedConfig) {
            teacher = c.string("finetune.teacher")
            denoiser = c.string("finetune.denoiser")
            thaw = c.string("finetune.thaw")
            loss = c.string("finetune.loss")
            epochs = c.optionalInt("finetune.epochs")
            numIters = c.optionalInt("finetune.num_iters")
            batchSize = c.optionalInt("finetune.batch_size")
            baseLR = c.double("finetune.base_lr")
            lr = c.optionalDouble("finetune.lr")
            minLR = c.double("finetune.min_lr")
            warmupRatio = c.double("finetune.warmup_ratio")
            schedule = c.string("finetune.schedule")
            lrSteps = c.ints("finetune.lr_steps")
            lrDecay = c.double("finetune.lr_decay")
            weightDecay = c.optionalDouble("finetune.weight_decay")
            l2Penalty = c.optionalDouble("finetune.l2_penalty")
            flip = c.bool("finetune.flip")
            gradientCheckpointing = c.bool("finetune.gradient_checkpointing")
            cacheTeacher = c.string("finetune.cache_teacher")
            export = c.string("finetune.export")
            saveFreq = c.int("finetune.save_freq")
            printFreq = c.int("finetune.print_freq")
        }

        /// Schema key → property name, for the consistency test.
        public static let keyNames: [String: String] = [
            "finetune.teacher": "teacher", "finetune.denoiser": "denoiser", "finetune.thaw": "thaw",
            "finetune.loss": "loss", "finetune.epochs": "epochs", "finetune.num_iters": "numIters",
            "finetune.batch_size": "batchSize", "finetune.base_lr": "baseLR", "finetune.lr": "lr",
            "finetune.min_lr": "minLR", "finetune.warmup_ratio": "warmupRatio", "finetune.schedule": "schedule",
            "finetune.lr_steps": "lrSteps", "finetune.lr_decay": "lrDecay", "finetune.weight_decay": "weightDecay",
            "finetune.l2_penalty": "l2Penalty", "finetune.flip": "flip",
            "finetune.gradient_checkpointing": "gradientCheckpointing", "finetune.cache_teacher": "cacheTeacher",
            "finetune.export": "export", "finetune.save_freq": "saveFreq", "finetune.print_freq": "printFreq",
        ]
    }
}
