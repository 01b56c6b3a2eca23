/** SOP Class UIDs (PS3.4 B.5) that change how the archive serves an instance. */

/** VL Whole Slide Microscopy Image (PS3.3 A.32.8): pyramid levels whose frames are tiles. */
export const WSI_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.77.1.6';
